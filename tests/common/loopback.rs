//! Small HTTP fakes on loopback: a server on port 0 for a test's own routes, and the
//! Jellyfin `GET /Items?Ids=` lookup several tests need, answered from the items-page
//! fixture.

use std::sync::mpsc;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

use super::jellyfin::API_KEY;

/// Jellyfin's `/Items` page fixture (two movies' and episodes' real-world shapes).
pub const ITEMS_PAGE: &str = include_str!("../fixtures/jellyfin_items_page.json");

/// Serves the routes `configure` adds on `127.0.0.1:0`, on a thread of its own with one
/// worker, until the test process ends; answers its base URL (`http://127.0.0.1:PORT`).
pub fn serve(configure: impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static) -> String {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = HttpServer::new(move || App::new().configure(configure.clone()))
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .unwrap();
            sender.send(server.addrs()[0]).unwrap();
            server.run().await.unwrap();
        });
    });
    format!("http://{}", receiver.recv().unwrap())
}

/// `GET /Items?Ids=…` as Jellyfin answers it with [`API_KEY`] (`MediaBrowser Token=…`,
/// else 401): the fixture's items with those ids (Jellyfin compares ids as Guids in N form,
/// as the daemon must send them).
pub async fn items_by_ids(
    request: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    let token = format!("MediaBrowser Token=\"{API_KEY}\"");
    if request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        != Some(token.as_str())
    {
        return HttpResponse::Unauthorized().finish();
    }
    let ids: Vec<String> = query
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("ids"))
        .flat_map(|(_, v)| v.split(',').map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let page: Value = serde_json::from_str(ITEMS_PAGE).unwrap();
    let found: Vec<Value> = page["Items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| ids.iter().any(|id| item["Id"] == id.as_str()))
        .cloned()
        .collect();
    HttpResponse::Ok()
        .json(json!({"Items": found, "TotalRecordCount": found.len(), "StartIndex": 0}))
}

/// A fake Jellyfin that answers only `GET /Items?Ids=…` ([`items_by_ids`]); its base URL.
pub fn jellyfin_items() -> String {
    serve(|config| {
        config.route("/Items", web::get().to(items_by_ids));
    })
}

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn problems(text: &str, env: &[(&str, &str)]) -> Vec<String> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(text, "test.toml", &env)
        .expect_err("config should be rejected")
        .problems
}

#[test]
fn shipped_reference_config_is_valid() {
    let settings = parse(REFERENCE_CONFIG, "config.toml", &[]).unwrap();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:6880");
    assert_eq!(settings.languages.wanted.len(), 2);
    assert_eq!(
        settings.libraries,
        [
            PathBuf::from("/volume1/media/movies"),
            PathBuf::from("/volume1/media/tv")
        ]
    );
    assert!(settings.server.api_key.is_none());
    assert_eq!(settings.jobs.max_downloads, 4);
}

/// The packages install `packaging/config.toml`: the reference config with the data dir the
/// systemd unit provides, and nothing else changed.
#[test]
fn packaged_config_is_the_reference_with_the_state_directory() {
    let packaged = include_str!("../../packaging/config.toml");
    let settings = parse(packaged, "packaging/config.toml", &[]).unwrap();
    assert_eq!(settings.data_dir, PathBuf::from("/var/lib/cuewarden"));

    let differing: Vec<(&str, &str)> = REFERENCE_CONFIG
        .lines()
        .zip(packaged.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(REFERENCE_CONFIG.lines().count(), packaged.lines().count());
    assert_eq!(
        differing.len(),
        1,
        "only data_dir may differ: {differing:#?}"
    );
    assert!(
        differing[0]
            .1
            .starts_with("data_dir = \"/var/lib/cuewarden\"")
    );
}

#[test]
fn empty_config_takes_the_defaults() {
    let settings = parse("", "empty", &[]).unwrap();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:6880");
    assert!(settings.data_dir.is_absolute());
    assert!(settings.jellyfin.is_none());
}

#[test]
fn every_unknown_key_is_reported_with_its_full_path() {
    let found = problems(
        "[server]\nlisten = \"127.0.0.1:1\"\nlistne = 1\n[jellyfin]\napi_key = \"k\"\nuser = \"x\"\n[[libraries]]\npath = \"/m\"\npth = 2\n[bogus]\na = 1\n",
        &[],
    );
    for expected in [
        "server.listne: unknown key",
        "jellyfin.user: unknown key",
        "bogus: unknown key",
    ] {
        assert!(
            found.iter().any(|p| p == expected),
            "missing {expected:?} in {found:?}"
        );
    }
    assert!(
        found.iter().any(|p| p == "libraries[0].pth: unknown key"),
        "{found:?}"
    );
}

#[test]
fn bad_values_are_all_reported_at_once() {
    let found = problems(
        "[server]\nlisten = \"nowhere\"\n[languages]\nwanted = [\"french\"]\nhearing_impaired = \"maybe\"\nmin_score = 200\n[[libraries]]\npath = \"relative/dir\"\n[jellyfin]\nurl = \"ftp://x\"\n[schedule]\ncleanup = \"61 * * * *\"\n[jobs]\nmax_attempts = 0\n",
        &[],
    );
    for key in [
        "server.listen:",
        "languages.wanted:",
        "languages.hearing_impaired:",
        "languages.min_score:",
        "libraries[0].path:",
        "jellyfin.url:",
        "jellyfin.api_key:",
        "schedule.cleanup:",
        "jobs.max_attempts:",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(key)),
            "no problem for {key} in {found:?}"
        );
    }
}

#[test]
fn type_errors_name_the_key() {
    let found = problems("[server]\nlisten = 5\n", &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("server.listen: "), "{found:?}");
}

#[test]
fn environment_overrides_keys_with_their_types() {
    let env = vec![
        (
            "CUEWARDEN__JELLYFIN__API_KEY".to_owned(),
            "123456".to_owned(),
        ),
        (
            "CUEWARDEN__SERVER__LISTEN".to_owned(),
            "0.0.0.0:7000".to_owned(),
        ),
        (
            "CUEWARDEN__LANGUAGES__WANTED".to_owned(),
            "de,it".to_owned(),
        ),
        ("CUEWARDEN__JOBS__MAX_ATTEMPTS".to_owned(), "3".to_owned()),
        ("OTHER".to_owned(), "x".to_owned()),
    ];
    let settings = parse("[jellyfin]\napi_key = \"file\"\n", "t", &env).unwrap();
    assert_eq!(settings.jellyfin.unwrap().api_key.expose(), "123456");
    assert_eq!(settings.server.listen.port(), 7000);
    let wanted: Vec<_> = settings
        .languages
        .wanted
        .iter()
        .map(|l| l.to_string())
        .collect();
    assert_eq!(wanted, ["de", "it"]);
    assert_eq!(settings.jobs.max_attempts, 3);
}

#[test]
fn unknown_environment_overrides_are_errors() {
    let found = problems(
        "",
        &[("CUEWARDEN__SERVER__LISTN", "x"), ("CUEWARDEN__NOPE", "1")],
    );
    assert!(
        found.iter().any(|p| p == "server.listn: unknown key"),
        "{found:?}"
    );
    assert!(
        found.iter().any(|p| p.starts_with("CUEWARDEN__NOPE:")),
        "{found:?}"
    );
}

#[test]
fn secrets_never_print() {
    let settings = parse(
        "[jellyfin]\napi_key = \"supersecret\"\nusername = \"u\"\npassword = \"hunter2\"\n",
        "t",
        &[],
    )
    .unwrap();
    let debug = format!("{settings:?}");
    assert!(
        !debug.contains("supersecret") && !debug.contains("hunter2"),
        "{debug}"
    );
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, "from-file\n").unwrap();
    let text = format!(
        "[server]\napi_key_file = {:?}\n",
        file.display().to_string()
    );
    let settings = parse(&text, "t", &[]).unwrap();
    assert_eq!(settings.server.api_key.unwrap().expose(), "from-file");
    let found = problems("[server]\napi_key_file = \"/nonexistent/key\"\n", &[]);
    assert!(
        found[0].starts_with("server.api_key_file: cannot read"),
        "{found:?}"
    );
}

#[test]
fn path_mappings_translate_the_longest_prefix() {
    let settings = parse(
        "[[path_mappings]]\nfrom = \"/data\"\nto = \"/volume1/other\"\n[[path_mappings]]\nfrom = \"/data/movies\"\nto = \"/volume1/media/movies\"\n",
        "t",
        &[],
    )
    .unwrap();
    assert_eq!(
        settings.map_path(Path::new("/data/movies/A/a.mkv")),
        Path::new("/volume1/media/movies/A/a.mkv")
    );
    assert_eq!(
        settings.map_path(Path::new("/data/x.mkv")),
        Path::new("/volume1/other/x.mkv")
    );
    assert_eq!(
        settings.map_path(Path::new("/elsewhere/x.mkv")),
        Path::new("/elsewhere/x.mkv")
    );
}

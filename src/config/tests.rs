#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::file::lenient;
use super::*;
use cuewarden_actors::Language;

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
        settings.library_roots(),
        [
            PathBuf::from("/volume1/media/movies"),
            PathBuf::from("/volume1/media/tv")
        ]
    );
    assert!(settings.libraries.iter().all(|l| l.languages.is_none()));
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
        "server.listne: unknown key; did you mean `listen`?",
        "jellyfin.user: unknown key",
        "bogus: unknown key",
    ] {
        assert!(
            found.iter().any(|p| p == expected),
            "missing {expected:?} in {found:?}"
        );
    }
    assert!(
        found
            .iter()
            .any(|p| p == "libraries[0].pth: unknown key; did you mean `path`?"),
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
        "languages.wanted[0]:",
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
        found.iter().any(|p| p
            == "server.listn (from CUEWARDEN__SERVER__LISTN): unknown key; did you mean `listen`?"),
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
    std::fs::write(&file, "from-file-0123456789\n").unwrap();
    let text = format!(
        "[server]\napi_key_file = {:?}\n",
        file.display().to_string()
    );
    let settings = parse(&text, "t", &[]).unwrap();
    assert_eq!(
        settings.server.api_key.unwrap().expose(),
        "from-file-0123456789"
    );
    let found = problems("[server]\napi_key_file = \"/nonexistent/key\"\n", &[]);
    assert!(
        found[0].starts_with("server.api_key_file: cannot read"),
        "{found:?}"
    );
}

// See: issue 7 ("`api_key = \" \"` is accepted").
#[test]
fn a_short_or_spaced_api_key_is_refused_without_showing_it() {
    let found = problems("[server]\napi_key = \" \"\n", &[]);
    assert_eq!(
        found,
        [
            "server.api_key: the key (1 character) contains whitespace; use at least 16 characters without spaces, or leave it empty to have one generated"
        ]
    );
    let found = problems("[server]\napi_key = \"hunter2\"\n", &[]);
    assert_eq!(
        found,
        [
            "server.api_key: the key has 7 characters; use at least 16, or leave it empty to have one generated"
        ]
    );
    let found = problems("", &[("CUEWARDEN__SERVER__API_KEY", "0123456789 abcdef")]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("server.api_key (from CUEWARDEN__SERVER__API_KEY): the key (17 characters) contains whitespace"),
        "{found:?}"
    );
    assert!(!found[0].contains("abcdef"), "{found:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, "short\n").unwrap();
    let text = format!(
        "[server]\napi_key_file = {:?}\n",
        file.display().to_string()
    );
    assert_eq!(
        problems(&text, &[]),
        [
            "server.api_key_file: the key has 5 characters; use at least 16, or leave it empty to have one generated"
        ]
    );
    assert!(parse("[server]\napi_key = \"0123456789abcdef\"\n", "t", &[]).is_ok());
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

/// The problems for `text`, asserting there are exactly `expected` (by key and start of the
/// message), in any order.
fn assert_problems(text: &str, expected: &[&str]) {
    let found = problems(text, &[]);
    for prefix in expected {
        assert!(
            found.iter().any(|p| p.starts_with(prefix)),
            "no {prefix:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), expected.len(), "{found:#?}");
}

#[test]
fn a_type_error_hides_nothing_else_in_its_section() {
    assert_problems(
        "[server]\nlisten=\"notanaddr\"\napi_key=5\nbogus=1\n",
        &[
            "server.listen: \"notanaddr\" is not an address:port",
            "server.api_key: invalid type: integer `5`, expected a string",
            "server.bogus: unknown key",
        ],
    );
    assert_problems(
        "[jellyfin]\nurl=\"ftp://x\"\nwebsocket=\"yes\"\n",
        &[
            "jellyfin.websocket: invalid type: string \"yes\", expected a boolean",
            "jellyfin.url: \"ftp://x\" has scheme \"ftp\"",
            "jellyfin.api_key: required",
        ],
    );
}

#[test]
fn every_array_entry_and_section_reports_every_problem() {
    assert_problems(
        "[[libraries]]\npath=5\n[[libraries]]\npath=\"rel\"\nfoo=1\n[server]\nlisten=\"x\"\nshutdown_grace_secs=\"a\"\n",
        &[
            "libraries[0].path: invalid type: integer `5`, expected a string",
            "libraries[1].path: \"rel\" is not an absolute path",
            "libraries[1].foo: unknown key",
            "server.listen: \"x\" is not an address:port",
            "server.shutdown_grace_secs: invalid type: string \"a\", expected a whole number",
        ],
    );
}

#[test]
fn a_missing_required_key_is_its_own_problem() {
    assert_problems(
        "[[libraries]]\nfoo=1\n[[libraries]]\npath=\"/ok\"\n[[libraries]]\npath=\"rel\"\n[[path_mappings]]\nfrom=\"/a\"\n[[path_mappings]]\nfrom=2\nto=\"x\"\n[[path_mappings]]\nfrom=\"rel\"\n",
        &[
            "libraries[0].path: missing",
            "libraries[0].foo: unknown key",
            "libraries[2].path: \"rel\" is not an absolute path",
            "path_mappings[0].to: missing",
            "path_mappings[1].from: invalid type: integer `2`, expected a string",
            "path_mappings[1].to: \"x\" is not an absolute path",
            "path_mappings[2].from: \"rel\" is not an absolute path",
            "path_mappings[2].to: missing",
        ],
    );
    assert_problems(
        "libraries = 5\npath_mappings = [\"/a\"]\nserver = 1\n",
        &[
            "libraries: expected an array of tables ([[libraries]]), found integer",
            "path_mappings[0]: expected a table, found string",
            "server: expected a table ([server]), found integer",
        ],
    );
}

/// serde's own required fields (none in the sections today, which use `Option` so that a
/// missing key does not hide its neighbours) are reported once, as `missing`.
#[test]
fn the_lenient_reader_reports_a_missing_required_field_once() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Entry {
        name: String,
        size: u32,
    }
    let value: toml::Value = toml::from_str("size = \"big\"\nsiz = 1\n").unwrap();
    let mut found = Problems::default();
    assert!(lenient::<Entry>(&value, "things[3]", &mut found).is_none());
    assert_eq!(
        found.into_lines(),
        [
            "things[3].size: invalid type: string \"big\", expected a whole number",
            "things[3].name: missing",
            "things[3].siz: unknown key; did you mean `size`?",
        ]
    );
    // A required key of the wrong type is not reported again as missing.
    let value: toml::Value = toml::from_str("name = 5\nsize = 1\n").unwrap();
    let mut found = Problems::default();
    assert!(lenient::<Entry>(&value, "things[3]", &mut found).is_none());
    assert_eq!(
        found.into_lines(),
        ["things[3].name: invalid type: integer `5`, expected a string"]
    );
}

#[test]
fn problems_are_grouped_by_section_in_file_order() {
    let found = problems(
        "[jobs]\nmax_attempts = 0\n[server]\nlisten = 1\n[[libraries]]\npath = \"rel\"\n[server2]\n",
        &[("CUEWARDEN__SERVER__MAX_BODY_BYTES", "1")],
    );
    let keys: Vec<&str> = found
        .iter()
        .map(|p| p.split([':', ' ']).next().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "server2",
            "server.listen",
            "server.max_body_bytes",
            "libraries[0].path",
            "jobs.max_attempts"
        ]
    );
}

#[test]
fn nested_tables_and_lists_report_every_problem() {
    assert_problems(
        "[providers.opensubtitles]\napi_key=5\nusername=\"u\"\npasword=\"p\"\n[providers.jellyfin]\nenabled=1\n[notify.discord]\nwebhook_url=7\nbogus=true\n[languages]\nwanted=[\"fr\", 5, 6]\nhearing_impaired=\"maybe\"\n",
        &[
            "providers.opensubtitles.api_key: invalid type: integer `5`, expected a string",
            "providers.opensubtitles.pasword: unknown key",
            "providers.opensubtitles.password: username and password go together",
            "providers.jellyfin.enabled: invalid type: integer `1`, expected a boolean",
            "providers.jellyfin: needs a [jellyfin] section",
            "notify.discord.webhook_url: invalid type: integer `7`, expected a string",
            "notify.discord.bogus: unknown key",
            "languages.wanted[1]: invalid type: integer `5`, expected a string",
            "languages.hearing_impaired: \"maybe\" is not one of",
        ],
    );
}

#[test]
fn cross_checks_skip_keys_already_reported() {
    // `reconnect_delay_secs` is dropped: no second line comparing the default with the max.
    assert_problems(
        "[jellyfin]\napi_key=\"k\"\nreconnect_delay_secs=\"a\"\nmax_reconnect_delay_secs=1\n[jobs]\nretry_min_delay_secs=true\nretry_max_delay_secs=1\n",
        &[
            "jellyfin.reconnect_delay_secs: invalid type",
            "jobs.retry_min_delay_secs: invalid type",
        ],
    );
}

#[test]
fn every_problem_is_exactly_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let unreadable = dir.path().join("missing");
    let text = format!(
        "top = 1\n\
         [server]\nlisten = 5\napi_key = [1, 2]\nmax_body_bytes = \"big\"\nx = 1\n\
         [storage]\ndata_dir = {{ a = 1 }}\n\
         [languages]\nwanted = [\"fr\", 5]\ntranslate_from = \"en\"\nhearing_impaired = 1.5\nmin_score = 2000\n\
         [[libraries]]\npath = 1979-05-27\n[[libraries]]\nnope = 1\n\
         [[path_mappings]]\nfrom = \"rel\"\n\
         [jellyfin]\nurl = \"::\"\nwebsocket = \"no\"\napi_key_file = {unreadable:?}\n\
         [providers.opensubtitles]\npassword_file = {unreadable:?}\n\
         [translator]\nkind = 3\n\
         [notify.discord]\nwebhook_url = \"notaurl\"\n[notify.slack]\nurl = \"x\"\n\
         [notify.email]\nto = [\"a\", 1]\nport = 70000\n\
         [schedule]\ncleanup = \"* * *\"\n\
         [jobs]\nmax_attempts = -1\n"
    );
    let env = [
        ("CUEWARDEN__SERVER__SHUTDOWN_GRACE_SECS", "soon"),
        ("CUEWARDEN__WATCHER__ENABLED", "maybe"),
        ("CUEWARDEN__X", "1"),
    ];
    let found = problems(&text, &env);
    assert!(found.len() >= 25, "{found:#?}");
    for problem in &found {
        assert!(
            !problem.contains('\n') && !problem.contains('\r'),
            "{problem:?}"
        );
        assert!(!problem.contains("in `"), "serde's trailer: {problem:?}");
        let key = problem.split(':').next().unwrap();
        assert!(
            !key.is_empty() && !key.contains(' ') || key.contains(" (from CUEWARDEN__"),
            "not keyed: {problem:?}"
        );
    }
    let errors = parse(&text, "test.toml", &[]).unwrap_err();
    assert_eq!(
        errors.to_string().lines().count(),
        errors.problems.len() + 1,
        "a header line, then one line per problem"
    );
}

#[test]
fn a_toml_syntax_error_is_one_line_with_its_position() {
    let found = problems("[server]\nlisten = \"a\"\nbad line\n", &[]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("test.toml: not valid TOML at line 3, column "),
        "{found:?}"
    );
    assert!(!found[0].contains('\n'), "{found:?}");
}

/// Clears what the reference sets on purpose (its example libraries and the data dir).
fn without_libraries(mut settings: Settings) -> String {
    settings.libraries.clear();
    settings.data_dir = PathBuf::new();
    format!("{settings:#?}")
}

fn raw(text: &str) -> ConfigFile {
    let table: toml::Table = text.parse().unwrap();
    let mut problems = Problems::default();
    let file = ConfigFile::read(&table, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    file
}

/// "what is not set takes the default shown here": the built-in defaults are the reference.
#[test]
fn built_in_defaults_are_what_the_reference_config_shows() {
    let defaults = without_libraries(parse("", "empty", &[]).unwrap());
    for (name, text) in [
        ("config.toml", REFERENCE_CONFIG),
        (
            "packaging/config.toml",
            include_str!("../../packaging/config.toml"),
        ),
    ] {
        let settings = without_libraries(parse(text, name, &[]).unwrap());
        assert_eq!(defaults, settings, "{name}");
    }
    // The raw file too: it holds the sections `Settings` does not carry yet.
    let mut empty = raw("");
    let mut reference = raw(REFERENCE_CONFIG);
    assert_eq!(reference.libraries.len(), 2);
    for file in [&mut empty, &mut reference] {
        file.libraries.clear();
        file.storage = StorageSection::default();
    }
    assert_eq!(format!("{empty:#?}"), format!("{reference:#?}"));
    let languages = parse("", "empty", &[]).unwrap().languages;
    let codes = |list: &[Language]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(codes(&languages.wanted), ["fr", "en"]);
    assert_eq!(codes(&languages.translate_from), ["en"]);
}

/// The commented-out sections of the reference show each key's default too: uncommented,
/// they read the same as the bare section headers.
#[test]
fn the_reference_config_comments_show_the_optional_sections_defaults() {
    let mut examples = String::new();
    let mut headers = String::new();
    for line in REFERENCE_CONFIG.lines() {
        let Some(rest) = line.strip_prefix("# ") else {
            examples.push_str(line);
            examples.push('\n');
            continue;
        };
        let header = rest.split('#').next().unwrap_or_default().trim();
        let is_header = header.starts_with('[') && header.ends_with(']') && !header.contains(' ');
        let is_key = rest.split_once(" = ").is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        });
        if is_header || is_key {
            examples.push_str(rest);
            examples.push('\n');
        }
        if is_header && !header.starts_with("[[") {
            headers.push_str(rest);
            headers.push('\n');
        }
    }
    for section in [
        "[jellyfin]",
        "[providers.opensubtitles]",
        "[translator]",
        "[notify.discord]",
    ] {
        assert!(
            headers.contains(section),
            "{section} not found in:\n{headers}"
        );
    }
    let shown = raw(&examples);
    let bare = raw(&headers);
    assert_eq!(shown.path_mappings.len(), 1);
    assert_eq!(
        format!(
            "{:#?}",
            (
                &shown.jellyfin,
                &shown.providers,
                &shown.translator,
                &shown.notify
            )
        ),
        format!(
            "{:#?}",
            (
                &bare.jellyfin,
                &bare.providers,
                &bare.translator,
                &bare.notify
            )
        )
    );
}

#[test]
fn subdl_podnapisi_and_gestdown_are_enabled_by_their_sections() {
    assert_eq!(
        problems("[providers.subdl]\n", &[]),
        [
            "providers.subdl.api_key: required when the provider is enabled (subdl.com, your account's API key)"
        ]
    );
    let settings = parse(
        "[providers.subdl]\napi_key = \"k\"\ntimeout_secs = 3\n[providers.podnapisi]\n\
         [providers.gestdown]\nbase_url = \"http://127.0.0.1:9/g\"\n",
        "t",
        &[],
    )
    .unwrap();
    let providers = settings.providers;
    let subdl = providers.subdl.unwrap();
    assert_eq!(subdl.api_key.expose(), "k");
    assert_eq!(subdl.endpoint.timeout.as_secs(), 3);
    assert_eq!(subdl.download_url.as_str(), "https://dl.subdl.com/");
    assert_eq!(
        providers.podnapisi.unwrap().base_url.as_str(),
        "https://www.podnapisi.net/"
    );
    assert_eq!(
        providers.gestdown.unwrap().base_url.as_str(),
        "http://127.0.0.1:9/g"
    );
    let off = parse(
        "[providers.podnapisi]\nenabled = false\n[providers.gestdown]\nenabled = false\n\
         [providers.subdl]\nenabled = false\n",
        "t",
        &[],
    )
    .unwrap()
    .providers;
    assert!(off.podnapisi.is_none() && off.gestdown.is_none() && off.subdl.is_none());
    assert_problems(
        "[providers.podnapisi]\nbase_url = \"ftp://x\"\ntimeout_secs = 0\n",
        &[
            "providers.podnapisi.base_url:",
            "providers.podnapisi.timeout_secs: 0 is not between 1 and 300",
        ],
    );
}

#[test]
fn the_provider_order_lists_known_names_once_and_the_rest_follow() {
    let order = |text: &str| parse(text, "t", &[]).unwrap().providers.order;
    assert_eq!(
        order(""),
        [
            "opensubtitles",
            "subdl",
            "podnapisi",
            "gestdown",
            "jellyfin"
        ]
    );
    assert_eq!(
        order("[providers]\norder = [\"gestdown\", \"Podnapisi\"]\n"),
        [
            "gestdown",
            "podnapisi",
            "opensubtitles",
            "subdl",
            "jellyfin"
        ]
    );
    assert_eq!(
        problems(
            "[providers]\norder = [\"subdl\", \"addic7ed\", \"subdl\"]\n",
            &[]
        ),
        [
            "providers.order[1]: \"addic7ed\" is not a provider (one of opensubtitles, subdl, podnapisi, gestdown, jellyfin)",
            "providers.order[2]: \"subdl\" is listed twice",
        ]
    );
}

#[test]
fn a_present_provider_is_enabled_unless_it_says_otherwise() {
    let found = problems("[providers.opensubtitles]\n", &[]);
    assert_eq!(
        found,
        ["providers.opensubtitles.api_key: required when the provider is enabled"]
    );
    parse("[providers.opensubtitles]\nenabled = false\n", "t", &[]).unwrap();
}

#[test]
fn notify_tables_are_typed() {
    assert_problems(
        "[jellyfin]\napi_key = \"k\"\n[notify.jellyfin]\nfoo = 1\nrefresh = \"yes\"\n[notify.discord]\nwebhook_url = \"notaurl\"\n[notify.slack]\nurl = \"https://x\"\n",
        &[
            "notify.jellyfin.foo: unknown key",
            "notify.jellyfin.refresh: invalid type: string \"yes\", expected a boolean",
            "notify.discord.webhook_url: is not a URL",
            "notify.slack: unknown key",
        ],
    );
    assert_problems(
        "[notify.jellyfin]\n[notify.discord]\n[notify.plex]\nurl = \"plex\"\n[notify.kodi]\nusername = \"u\"\n[notify.pushover]\npriority = 2\n[notify.email]\nhost = \"smtp\"\nsecurity = \"ssl\"\nfrom = \"me\"\nto = [\"you@x\", \"<a@b>\"]\n[notify.ntfy]\ntopic = \"a/b\"\npriority = 0\n[notify.gotify]\nurl = \"ftp://g\"\npriority = 11\n",
        &[
            "notify.jellyfin: needs a [jellyfin] section",
            "notify.discord.webhook_url: required",
            "notify.plex.url: \"plex\" is not a URL",
            "notify.plex.token: required",
            "notify.kodi.password: username and password go together",
            "notify.pushover.token: required",
            "notify.pushover.user: required",
            "notify.pushover.priority: 2 is not between -2 and 1",
            "notify.email.security: \"ssl\" is not one of starttls, tls, none",
            "notify.email.from: \"me\" is not an e-mail address",
            "notify.email.to[1]: \"<a@b>\" is not an e-mail address",
            "notify.ntfy.topic: \"a/b\" is not a topic",
            "notify.ntfy.priority: 0 is not between 1 and 5",
            "notify.gotify.url: \"ftp://g\" has scheme \"ftp\"",
            "notify.gotify.token: required",
            "notify.gotify.priority: 11 is not between 0 and 10",
        ],
    );
    // A webhook URL carries its token: it never appears in a problem.
    let found = problems(
        "[notify.discord]\nwebhook_url = \"ftp://discord.com/api/webhooks/1/SECRETTOKEN\"\n",
        &[],
    );
    assert!(
        found[0].starts_with("notify.discord.webhook_url: has scheme"),
        "{found:?}"
    );
    assert!(!found[0].contains("SECRETTOKEN"), "{found:?}");
}

#[test]
fn configured_notifiers_are_typed_settings() {
    let settings = parse(
        "[jellyfin]\napi_key = \"k\"\n\
         [notify.jellyfin]\nrefresh = false\n\
         [notify.discord]\nwebhook_url = \"https://discord.com/api/webhooks/1/tok\"\n\
         [notify.plex]\ntoken = \"p\"\n\
         [notify.kodi]\nusername = \"kodi\"\npassword = \"pw\"\n\
         [notify.pushover]\ntoken = \"t\"\nuser = \"u\"\ndevice = \"phone, tablet\"\n\
         [notify.email]\nhost = \"smtp.example.org\"\nport = 465\nsecurity = \"tls\"\nfrom = \"cuewarden@example.org\"\nto = [\"me@example.org\"]\n\
         [notify.ntfy]\ntopic = \"subs_done\"\n\
         [notify.gotify]\nurl = \"http://gotify.lan\"\ntoken = \"g\"\n",
        "t",
        &[],
    )
    .unwrap();
    let notify = &settings.notify;
    assert_eq!(notify.jellyfin, Some(JellyfinNotify { refresh: false }));
    assert_eq!(
        notify.discord.as_ref().unwrap().webhook_url.expose(),
        "https://discord.com/api/webhooks/1/tok"
    );
    assert_eq!(
        notify.plex.as_ref().unwrap().url.as_str(),
        "http://127.0.0.1:32400/"
    );
    assert_eq!(
        notify.kodi.as_ref().unwrap().url.as_str(),
        "http://127.0.0.1:8080/jsonrpc"
    );
    assert_eq!(
        notify.pushover.as_ref().unwrap().devices,
        ["phone", "tablet"]
    );
    let email = notify.email.as_ref().unwrap();
    assert_eq!((email.port, email.security), (465, SmtpSecurity::Tls));
    let ntfy = notify.ntfy.as_ref().unwrap();
    assert_eq!(
        (ntfy.url.as_str(), ntfy.topic.as_str(), ntfy.priority),
        ("https://ntfy.sh/", "subs_done", 3)
    );
    assert_eq!(notify.gotify.as_ref().unwrap().priority, 5);
    let debug = format!("{settings:?}");
    assert!(!debug.contains("webhooks/1/tok"), "{debug}");

    let none = parse("", "t", &[]).unwrap().notify;
    assert!(none.jellyfin.is_none() && none.discord.is_none() && none.email.is_none());
}

/// Every `*_file` secret the raw sections have: `(section, key)`.
const SECRET_FILES: &[(&str, &str)] = &[
    ("server", "api_key_file"),
    ("jellyfin", "api_key_file"),
    ("jellyfin", "password_file"),
    ("providers.opensubtitles", "api_key_file"),
    ("providers.opensubtitles", "password_file"),
    ("providers.subdl", "api_key_file"),
    ("translator", "api_key_file"),
    ("notify.plex", "token_file"),
    ("notify.kodi", "password_file"),
    ("notify.discord", "webhook_url_file"),
    ("notify.pushover", "token_file"),
    ("notify.email", "password_file"),
    ("notify.ntfy", "token_file"),
    ("notify.gotify", "token_file"),
    ("notify.ntfy", "password_file"),
    ("notify.apprise", "urls_file"),
];

#[test]
fn every_unreadable_secret_file_is_reported() {
    let sources = [
        include_str!("server.rs"),
        include_str!("jellyfin.rs"),
        include_str!("providers.rs"),
        include_str!("translator.rs"),
        include_str!("notify.rs"),
    ];
    let declared = sources
        .iter()
        .flat_map(|source| source.lines())
        .filter(|line| {
            line.trim_start().starts_with("pub ") && line.contains("_file: Option<String>")
        })
        .count();
    assert_eq!(
        declared,
        SECRET_FILES.len(),
        "a *_file key is missing from SECRET_FILES"
    );
    for (section, key) in SECRET_FILES {
        let found = problems(
            &format!("[{section}]\n{key} = \"/nonexistent/cuewarden-secret\"\n"),
            &[],
        );
        let expected = format!("{section}.{key}: cannot read \"/nonexistent/cuewarden-secret\"");
        assert!(
            found.iter().any(|p| p.starts_with(&expected)),
            "no {expected:?} in {found:#?}"
        );
        let base = key.trim_end_matches("_file");
        assert!(
            !found
                .iter()
                .any(|p| p.starts_with(&format!("{section}.{base}: required"))),
            "reported twice: {found:#?}"
        );
    }
    // Also when the provider is disabled, and next to another unreadable file.
    assert_problems(
        "[providers.opensubtitles]\nenabled = false\npassword_file = \"/nope\"\n",
        &["providers.opensubtitles.password_file: cannot read \"/nope\""],
    );
    assert_problems(
        "[providers.opensubtitles]\napi_key_file = \"/nope\"\npassword_file = \"/nope\"\nusername = \"u\"\n",
        &[
            "providers.opensubtitles.api_key_file: cannot read",
            "providers.opensubtitles.password_file: cannot read",
        ],
    );
}

#[test]
fn problems_from_the_environment_name_the_variable() {
    let found = problems(
        "[server]\nlisten = \"127.0.0.1:1\"\n[jobs]\nmax_attempts = 0\n",
        &[
            ("CUEWARDEN__SERVER__LISTEN", "bad"),
            ("CUEWARDEN__SERVER__MAX_BODY_BYTES", "lots"),
            ("CUEWARDEN__SERVER__API_KEY_FILE", "/nonexistent/42"),
            ("CUEWARDEN__NOTIFY__DISCORD__WEBHOOK_URL", "notaurl"),
            ("CUEWARDEN__LANGUAGES__WANTED", "fr,xx1"),
        ],
    );
    for expected in [
        "server.listen (from CUEWARDEN__SERVER__LISTEN): \"bad\" is not an address:port",
        "server.max_body_bytes (from CUEWARDEN__SERVER__MAX_BODY_BYTES): invalid type: string \"lots\"",
        "server.api_key_file (from CUEWARDEN__SERVER__API_KEY_FILE): cannot read \"/nonexistent/42\"",
        "notify.discord.webhook_url (from CUEWARDEN__NOTIFY__DISCORD__WEBHOOK_URL): is not a URL",
        "languages.wanted[1] (from CUEWARDEN__LANGUAGES__WANTED): ",
        // Set in the file: no variable named.
        "jobs.max_attempts: must be at least 1",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "no {expected:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), 6, "{found:#?}");
}

#[test]
fn sections_this_version_does_not_use_yet_are_named() {
    let settings = parse(
        "[providers.opensubtitles]\napi_key = \"k\"\n[providers.jellyfin]\nenabled = false\n\
         [translator]\nkind = \"deepl\"\nurl = \"https://api-free.deepl.com\"\napi_key = \"d\"\n",
        "t.toml",
        &[],
    )
    .unwrap();
    // The translator is active: it is built, not named.
    assert!(settings.not_yet_active.is_empty());
    assert!(settings.translator.is_some());
    assert!(parse("", "empty", &[]).unwrap().not_yet_active.is_empty());
}

#[test]
fn deepl_needs_a_key_other_translators_may_run_without() {
    let found = problems(
        "[translator]\nkind = \"deepl\"\nurl = \"https://api-free.deepl.com\"\n",
        &[],
    );
    assert_eq!(
        found,
        ["translator.api_key: required for kind = \"deepl\""],
        "{found:?}"
    );
    parse(
        "[translator]\nkind = \"libretranslate\"\nurl = \"http://127.0.0.1:5000\"\n",
        "t.toml",
        &[],
    )
    .unwrap();
}

#[test]
fn type_errors_say_what_to_write() {
    assert_problems(
        "[server]\nshutdown_grace_secs = \"ten\"\n[languages]\nmin_score = 1.5\ntranslate_from = \"en\"\n[watcher]\nenabled = \"yes\"\n[notify.email]\nhost = \"smtp\"\nport = 70000\nfrom = \"a@b\"\nto = [\"c@d\"]\n[jobs]\nmax_attempts = -1\n[notify.discord]\nwebhook_url = \"https://x\"\n[providers]\njellyfin = 1\n",
        &[
            "server.shutdown_grace_secs: invalid type: string \"ten\", expected a whole number",
            "languages.min_score: invalid type: floating point `1.5`, expected a whole number",
            "languages.translate_from: invalid type: string \"en\", expected a list of strings",
            "watcher.enabled: invalid type: string \"yes\", expected a boolean",
            "notify.email.port: invalid value: integer `70000`, expected a whole number from 0 to 65535",
            "jobs.max_attempts: invalid value: integer `-1`, expected a whole number from 0 to 4294967295",
            "providers.jellyfin: invalid type: integer `1`, expected a table",
        ],
    );
    for problem in problems(
        "[server]\nmax_body_bytes = \"1\"\n[jobs]\nmax_attempts = \"x\"\n",
        &[],
    ) {
        assert!(
            !problem.contains("expected u") && !problem.contains("expected i"),
            "{problem}"
        );
    }
}

#[test]
fn a_url_without_its_scheme_is_named_so() {
    assert_problems(
        "[jellyfin]\nurl = \"localhost:8096\"\napi_key = \"k\"\n[notify.ntfy]\nurl = \"ntfy.example.org/x\"\ntopic = \"t\"\n[notify.gotify]\nurl = \"192.168.1.5:80\"\ntoken = \"t\"\n[notify.discord]\nwebhook_url = \"discord.com/api/webhooks/1/SECRETTOKEN\"\n",
        &[
            "jellyfin.url: \"localhost:8096\" is missing the scheme; use \"http://localhost:8096\"",
            "notify.ntfy.url: \"ntfy.example.org/x\" is missing the scheme; use \"http://ntfy.example.org/x\"",
            "notify.gotify.url: \"192.168.1.5:80\" is missing the scheme; use \"http://192.168.1.5:80\"",
            "notify.discord.webhook_url: is missing the scheme; use https://",
        ],
    );
    // A real scheme that is not http(s) keeps its message.
    assert_problems(
        "[jellyfin]\nurl = \"ftp://x:21\"\napi_key = \"k\"\n",
        &["jellyfin.url: \"ftp://x:21\" has scheme \"ftp\"; use http or https"],
    );
}

#[test]
fn a_misspelt_key_gets_the_close_known_one() {
    assert_problems(
        "[languages]\nwnated = [\"fr\"]\ncolour = 1\n[sever]\n[providers.opensubtitles]\napi_key = \"k\"\napikey = \"k\"\n[notify.emial]\n",
        &[
            "languages.wnated: unknown key; did you mean `wanted`?",
            "languages.colour: unknown key",
            "sever: unknown key; did you mean `server`?",
            "providers.opensubtitles.apikey: unknown key; did you mean `api_key`?",
            "notify.emial: unknown key; did you mean `email`?",
        ],
    );
    assert!(problems("[languages]\ncolour = 1\n", &[]) == ["languages.colour: unknown key"]);
}

/// Relative paths start at the config file's folder, not at the working directory.
#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/jellyfin"), "from-the-folder\n").unwrap();
    let config = dir.path().join("cuewarden.toml");
    std::fs::write(
        &config,
        "[storage]\ndata_dir = \"state/../data\"\n[jellyfin]\napi_key_file = \"secrets/jellyfin\"\n",
    )
    .unwrap();
    let settings = load(Some(&config)).unwrap();
    assert_eq!(settings.data_dir, dir.path().join("data"));
    assert_eq!(
        settings.jellyfin.unwrap().api_key.expose(),
        "from-the-folder"
    );
    assert_eq!(settings.origin.as_deref(), Some(config.as_path()));

    // The same file read from elsewhere: the same paths.
    let text = std::fs::read_to_string(&config).unwrap();
    let again = parse_in(&text, "t", dir.path(), &[]).unwrap();
    assert_eq!(again.data_dir, settings.data_dir);
    // A missing secret file is named as written, from the environment too.
    let found = parse_in(
        "",
        "t",
        dir.path(),
        &[(
            "CUEWARDEN__SERVER__API_KEY_FILE".to_owned(),
            "nope".to_owned(),
        )],
    )
    .unwrap_err()
    .problems;
    assert!(
        found[0].starts_with(
            "server.api_key_file (from CUEWARDEN__SERVER__API_KEY_FILE): cannot read \"nope\""
        ),
        "{found:?}"
    );

    // No file: the working directory.
    let defaults = parse("", "built-in defaults", &[]).unwrap();
    assert_eq!(
        defaults.data_dir,
        std::env::current_dir().unwrap().join("data")
    );
}

#[test]
fn a_library_may_want_its_own_languages() {
    let settings = parse(
        "[[libraries]]\npath = \"/m/anime\"\nlanguages = [\"ja\", \"EN\", \"en\"]\n[[libraries]]\npath = \"/m/tv\"\n",
        "t",
        &[],
    )
    .unwrap();
    let codes: Vec<Option<Vec<String>>> = settings
        .libraries
        .iter()
        .map(|l| {
            l.languages
                .as_ref()
                .map(|list| list.iter().map(ToString::to_string).collect())
        })
        .collect();
    assert_eq!(codes, [Some(vec!["ja".to_owned(), "en".to_owned()]), None]);
    assert_eq!(settings.libraries[1].path, PathBuf::from("/m/tv"));

    assert_problems(
        "[[libraries]]\npath = \"/a\"\n[[libraries]]\npath = \"/b\"\nlanguages = [\"fr\", \"xx1\"]\n[[libraries]]\npath = \"/c\"\nlanguages = []\n[[libraries]]\npath = \"/d\"\nlanguages = [\"fr\", 5]\n[[libraries]]\npath = \"/e\"\nlanguages = \"fr\"\nlangs = 1\n",
        &[
            "libraries[1].languages[1]: ",
            "libraries[2].languages: name at least one language",
            "libraries[3].languages[1]: invalid type: integer `5`, expected a string",
            "libraries[4].languages: invalid type: string \"fr\", expected a list of strings",
            "libraries[4].langs: unknown key",
        ],
    );
}

#[test]
fn library_roots_are_neither_repeated_nor_nested_without_their_own_languages() {
    assert_problems(
        "[[libraries]]\npath = \"/m/movies\"\n[[libraries]]\npath = \"/m/movies/\"\n[[libraries]]\npath = \"/m/movies/kids\"\n[[libraries]]\npath = \"/m\"\n[[libraries]]\npath = \"/m/movies2\"\n[[libraries]]\npath = \"/m/tv/../movies\"\n",
        &[
            "libraries[1].path: \"/m/movies\" is already libraries[0].path",
            "libraries[2].path: \"/m/movies/kids\" is inside libraries[0].path (\"/m/movies\")",
            "libraries[3].path: \"/m\" holds libraries[0].path (\"/m/movies\")",
            "libraries[5].path: \"/m/movies\" is already libraries[0].path",
        ],
    );
    // A folder inside a library may be one to give its videos other languages.
    let settings = parse(
        "[[libraries]]\npath = \"/m/movies\"\n[[libraries]]\npath = \"/m/movies/kids\"\nlanguages = [\"fr\"]\n",
        "test",
        &[],
    )
    .unwrap();
    assert_eq!(settings.libraries.len(), 2);
}

#[test]
fn language_codes_are_reported_at_their_index() {
    assert_problems(
        "[languages]\nwanted = [\"fr\", \"xx1\"]\ntranslate_from = [\"zz9\"]\n",
        &["languages.wanted[1]: ", "languages.translate_from[0]: "],
    );
}

#[test]
fn every_environment_problem_names_its_variable() {
    let found = problems(
        "",
        &[
            ("CUEWARDEN__BOGUS__X", "1"),
            ("CUEWARDEN__LIBRARIES__0__PATH", "/m"),
            ("CUEWARDEN__NOTIFY__SLACK__URL", "https://x"),
            ("CUEWARDEN__NOTIFY__JELLYFIN__REFRESH", "true"),
        ],
    );
    for expected in [
        "bogus (from CUEWARDEN__BOGUS__X): unknown key",
        "CUEWARDEN__LIBRARIES__0__PATH: [[libraries]] entries cannot be set from the environment",
        "notify.slack (from CUEWARDEN__NOTIFY__SLACK__URL): unknown key",
        "notify.jellyfin (from CUEWARDEN__NOTIFY__JELLYFIN__REFRESH): needs a [jellyfin] section",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "no {expected:?} in {found:#?}"
        );
    }
    assert_eq!(found.len(), 4, "{found:#?}");
    // A table the file has is not the variable's: its problems name no variable.
    let found = problems("[jellyfin]\n", &[("CUEWARDEN__JELLYFIN__URL", "http://j")]);
    assert_eq!(
        found,
        ["jellyfin.api_key: required when [jellyfin] is present (Dashboard → API Keys)"]
    );
}

#[test]
fn the_translation_cache_days_default_to_180_and_0_keeps_it_forever() {
    let day = std::time::Duration::from_secs(86_400);
    let base = REFERENCE_CONFIG;
    let settings = parse(base, "config.toml", &[]).unwrap();
    assert!(settings.translator.is_none());
    assert_eq!(settings.translation_cache_kept(), Some(day * 180));
    let with = |extra: &str| format!("{base}\n[translator]\napi_key = \"k\"\n{extra}");
    let settings = parse(&with(""), "config.toml", &[]).unwrap();
    assert_eq!(settings.translation_cache_kept(), Some(day * 180));
    let settings = parse(&with("cache_days = 7"), "config.toml", &[]).unwrap();
    assert_eq!(settings.translation_cache_kept(), Some(day * 7));
    let settings = parse(&with("cache_days = 0"), "config.toml", &[]).unwrap();
    assert_eq!(settings.translation_cache_kept(), None);
    for bad in ["-1", "36501"] {
        let found = problems(&with(&format!("cache_days = {bad}")), &[]);
        assert_eq!(
            found,
            [format!(
                "translator.cache_days: {bad} is not between 0 and 36500"
            )],
            "{found:?}"
        );
    }
}

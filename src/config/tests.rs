use super::*;

fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
}

#[test]
fn empty_file_gives_the_documented_defaults() {
    let c = Config::from_toml_with_env("", &env(&[])).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8081");
    assert_eq!(c.database_url, "sqlite://tollgate.db");
    assert_eq!(c.default_provider, "openai");
    assert_eq!(c.max_request_bytes, 33_554_432);
    assert_eq!(c.auth_mode, AuthMode::Keys);
    let names: Vec<&str> = c.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["openai", "anthropic", "gemini"]);
    assert!(c.providers.iter().all(|p| p.api_key.is_none()));
    assert!(c.admin_token.is_none());
}

#[test]
fn env_vars_expand_and_fill_provider_keys() {
    let c = Config::from_toml_with_env(
        "[admin]\ntoken = \"${TOK}\"\n",
        &env(&[("TOK", "s3cret"), ("OPENAI_API_KEY", "sk-1")]),
    )
    .unwrap();
    assert_eq!(c.admin_token.as_deref(), Some("s3cret"));
    assert_eq!(c.provider("openai").unwrap().api_key.as_deref(), Some("sk-1"));
    assert_eq!(c.provider("anthropic").unwrap().api_key, None);
}

#[test]
fn missing_env_var_names_variable_and_path() {
    let text = "[[providers]]\nname = \"groq\"\nkind = \"openai\"\nbase_url = \"https://api.groq.com/openai\"\napi_key = \"${GROQ_KEY}\"\n";
    let err = Config::from_toml_with_env(text, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("GROQ_KEY") && err.contains("providers[0].api_key"), "{err}");
}

#[test]
fn unknown_fields_are_errors_naming_their_path() {
    let err = Config::from_toml_with_env("[server]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n", &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("server") && err.contains("listne"), "{err}");
    let err = Config::from_toml_with_env(
        "[[providers]]\nname = \"x\"\nkind = \"openai\"\nbase_url = \"http://h\"\nbase = 1\n",
        &env(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("providers[0]") && err.contains("base"), "{err}");
}

#[test]
fn invalid_values_are_rejected() {
    for (text, needle) in [
        ("[auth]\nmode = \"magic\"\n", "auth.mode"),
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[server]\ndefault_provider = \"nope\"\n", "server.default_provider"),
        ("[admin]\nlisten = \"0.0.0.0:9\"\n", "admin.token"),
        ("[[providers]]\nname = \"a\"\nkind = \"cohere\"\nbase_url = \"http://h\"\n", "providers[0].kind"),
        ("[[providers]]\nname = \"a\"\nkind = \"openai\"\nbase_url = \"ftp://h\"\n", "providers[0].base_url"),
        ("[[providers]]\nname = \"v1\"\nkind = \"openai\"\nbase_url = \"http://h\"\n", "providers[0].name"),
    ] {
        let err = Config::from_toml_with_env(text, &env(&[])).unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}

#[test]
fn configured_provider_overrides_builtin_of_same_name() {
    let text = "[[providers]]\nname = \"openai\"\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:9999\"\napi_key = \"k\"\n";
    let c = Config::from_toml_with_env(text, &env(&[])).unwrap();
    assert_eq!(c.providers.len(), 3);
    let p = c.provider("openai").unwrap();
    assert_eq!(p.authority.as_str(), "127.0.0.1:9999");
    assert_eq!(p.api_key.as_deref(), Some("k"));
}

#[test]
fn shipped_example_config_loads() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tollgate.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let c = Config::from_toml_with_env(&text, &env(&[("TOLLGATE_ADMIN_TOKEN", "t")])).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.admin_token.as_deref(), Some("t"));
}

#[test]
fn the_documented_pricing_entry_loads_with_every_billed_dimension() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tollgate.toml");
    let text = std::fs::read_to_string(path).unwrap();
    // The commented-out [[pricing.models]] example, uncommented: it must be a valid entry.
    let example: String = text
        .lines()
        .skip_while(|l| *l != "# [[pricing.models]]")
        .take_while(|l| l.starts_with("# "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    assert!(example.contains("[pricing.models.service_tiers.flex]"), "{example}");
    let c = Config::from_toml_with_env(&format!("{text}\n{example}"), &env(&[("TOLLGATE_ADMIN_TOKEN", "t")]))
        .unwrap();
    let m = c.prices.models().iter().find(|m| m.name == "my-model").unwrap();
    assert_eq!(m.provider.as_deref(), Some("azure"));
    assert_eq!(m.service_tiers.keys().collect::<Vec<_>>(), ["flex", "priority"]);
    assert_eq!(m.service_tiers["flex"].rates.cached_input, m.base.cached_input);
    assert!(
        m.base.input_audio.is_some() && m.web_search_per_1k.is_some() && m.inference_geo.contains_key("us")
    );
}

#[test]
fn unknown_pricing_fields_name_their_path_at_any_depth() {
    let entry = "[[pricing.models]]\nname = \"m\"\ninput = \"1\"\noutput = \"2\"\n";
    for (extra, path) in [
        ("web_serch_per_1k = \"1\"\n", "pricing.models[0]"),
        ("[pricing.models.service_tiers.flex]\ninput = \"1\"\ncolour = \"x\"\n", "pricing.models[0].service_tiers.flex"),
        (
            "[pricing.models.service_tiers.flex]\nlong_context = { threshold_input_tokens = 1, colour = \"x\" }\n",
            "pricing.models[0].service_tiers.flex.long_context",
        ),
    ] {
        let err = Config::from_toml_with_env(&format!("{entry}{extra}"), &env(&[])).unwrap_err().to_string();
        assert!(err.contains(path) && (err.contains("colour") || err.contains("web_serch")), "{extra}: {err}");
    }
    let err = Config::from_toml_with_env(&format!("{entry}inference_geo = {{ us = \"x\" }}\n"), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("pricing.models[0]") && err.contains("inference_geo.us"), "{err}");
}

#[test]
fn container_config_loads_and_requires_an_admin_token() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/container.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let c = Config::from_toml_with_env(&text, &env(&[("TOLLGATE_ADMIN_TOKEN", "t")])).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    let err = Config::from_toml_with_env(&text, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("TOLLGATE_ADMIN_TOKEN"), "{err}");
}

#[test]
fn the_journal_sits_beside_its_database_named_after_it() {
    let dir = |toml: &str| Config::from_toml_with_env(toml, &env(&[])).unwrap().journal.dir;
    assert_eq!(dir(""), PathBuf::from("tollgate.journal"));
    assert_eq!(
        dir("[database]\nurl = \"sqlite:///var/lib/tg/main.db\"\n"),
        PathBuf::from("/var/lib/tg/main.journal")
    );
    assert_eq!(
        dir("[database]\nurl = \"sqlite://data/other.db?mode=rwc\"\n"),
        PathBuf::from("data/other.journal")
    );
    assert_eq!(dir("[database]\nurl = \"postgres://u@h/db\"\n"), PathBuf::from("tollgate.journal"));
    assert_eq!(dir("[ledger]\njournal_dir = \"/j\"\n"), PathBuf::from("/j"));
    let c = Config::from_toml_with_env("[ledger]\nfsync_ms = 0\n", &env(&[])).unwrap();
    assert!(c.journal.fsync.is_zero());
    assert!(Config::from_toml_with_env("[ledger]\njournal_max_bytes = 1000\n", &env(&[])).is_err());
}

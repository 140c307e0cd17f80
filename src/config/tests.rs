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
fn container_config_loads_and_requires_an_admin_token() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/container.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let c = Config::from_toml_with_env(&text, &env(&[("TOLLGATE_ADMIN_TOKEN", "t")])).unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    let err = Config::from_toml_with_env(&text, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("TOLLGATE_ADMIN_TOKEN"), "{err}");
}

//! The dashboard: its login and session, what its pages show against the cost records,
//! names from clients escaped, and the whole of it driven in a real headless Chromium
//! (Debian's `chromium` and `chromium-driver`; .ci/run installs them).

use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::metering::record_for;
use crate::support::*;

/// Chat completions priced by model; anything else (the alert webhook) a plain 200.
fn upstream(seen: &Seen) -> Reply {
    let Ok(body) = serde_json::from_slice::<Value>(&seen.body) else { return Reply::json(200, "{}") };
    let Some(model) = body["model"].as_str() else { return Reply::json(200, "{}") };
    Reply::json(
        200,
        json!({"id": "x", "object": "chat.completion", "model": model, "choices": [],
               "usage": {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}})
        .to_string(),
    )
}

/// Sends `times` chat calls for `model` with `key` and waits for their records.
async fn spend(app: &TestApp, key: &str, model: &str, times: usize) {
    for _ in 0..times {
        let body = json!({"model": model, "messages": []}).to_string();
        let got = send(&client(), openai_post(&app.url("/v1/chat/completions"), key, &body)).await;
        assert_eq!(got.status, 200, "{:?}", got.body);
        record_for(app, got.headers["x-tollgate-request-id"].to_str().unwrap()).await;
    }
}

/// The sum of a project's cost records, read through the admin API.
async fn records_sum(app: &TestApp, project_id: &str) -> (usize, Decimal) {
    let page =
        app.admin("GET", &format!("/v1/cost-records?project_id={project_id}&limit=1000"), None).await.json();
    let data = page["data"].as_array().unwrap();
    let sum = data.iter().map(|r| Decimal::from_str(r["cost_usd"].as_str().unwrap()).unwrap()).sum();
    (data.len(), sum)
}

/// A GET on the admin listener with optional headers.
async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = Request::get(format!("http://{}{path}", app.admin));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(&client(), req.body(Full::new(Bytes::new())).unwrap()).await
}

async fn post_form(app: &TestApp, path: &str, form: &str) -> Got {
    let req = Request::post(format!("http://{}{path}", app.admin))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form.to_owned())))
        .unwrap();
    send(&client(), req).await
}

fn text(got: &Got) -> String {
    String::from_utf8(got.body.to_vec()).unwrap()
}

/// The `data-usd` of the cost cell in the table row of `group`.
fn group_cost(html: &str, group: &str) -> Option<Decimal> {
    let row = html.split(&format!(r#"data-group="{group}""#)).nth(1)?.split("</tr>").next()?;
    let cell = row.split(r#"class="n cost""#).nth(1)?;
    let value = cell.split(r#"data-usd=""#).nth(1)?.split('"').next()?;
    Some(Decimal::from_str(value).unwrap())
}

#[tokio::test]
async fn the_dashboard_takes_the_token_or_a_session_and_nothing_else() {
    let app = spawn_app(upstream).await;
    // Anonymous: the login form, as a 401 page that loads nothing from elsewhere.
    let anonymous = get(&app, "/dashboard", &[]).await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.headers["content-type"], "text/html; charset=utf-8");
    assert!(text(&anonymous).contains(r#"name="token""#));
    let policy = anonymous.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'") && !policy.contains("script-src"), "{policy}");
    assert!(!text(&anonymous).contains("<script"));
    // The bearer token works as on the JSON API.
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    assert_eq!(get(&app, "/dashboard", &[("authorization", &bearer)]).await.status, 200);

    // A wrong token is refused and sets nothing.
    let wrong = post_form(&app, "/dashboard/login", "token=not-it").await;
    assert_eq!(wrong.status, 403);
    assert!(wrong.headers.get("set-cookie").is_none());
    assert!(text(&wrong).contains("not the admin token"));

    // The right one: a session cookie that is not the token, HttpOnly, SameSite=Lax.
    let login = post_form(&app, "/dashboard/login", &format!("token={ADMIN_TOKEN}")).await;
    assert_eq!(login.status, 303);
    assert_eq!(login.headers["location"], "/dashboard");
    let set = login.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(!set.contains(ADMIN_TOKEN), "{set}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/dashboard", "Max-Age=43200"] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = get(&app, "/dashboard", &[("cookie", &cookie)]).await;
    assert_eq!(page.status, 200);
    assert!(text(&page).contains("Sign out"));
    // The cookie opens the pages only: not the JSON API.
    assert_eq!(get(&app, "/v1/organizations", &[("cookie", &cookie)]).await.status, 401);
    // A forged or altered cookie is a stranger's.
    let (expiry, tag) = cookie.split_once('.').unwrap();
    let later = format!(
        "tollgate_session={}.{tag}",
        expiry.trim_start_matches("tollgate_session=").parse::<i64>().unwrap() + 3600
    );
    assert_eq!(get(&app, "/dashboard", &[("cookie", &later)]).await.status, 401);
    let flipped = format!(
        "{expiry}.{}",
        if tag.starts_with('0') { tag.replacen('0', "1", 1) } else { format!("0{}", &tag[1..]) }
    );
    assert_eq!(get(&app, "/dashboard", &[("cookie", &flipped)]).await.status, 401);

    let logout = post_form(&app, "/dashboard/logout", "").await;
    assert_eq!(logout.status, 303);
    assert!(logout.headers["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn the_page_shows_each_projects_spend_as_the_sum_of_its_records() {
    let app = spawn_app(upstream).await;
    let a = app.seed().await;
    let b = app.seed().await;
    spend(&app, &a.key, "gpt-4o", 3).await;
    spend(&app, &a.key, "gpt-4o-mini", 2).await;
    spend(&app, &b.key, "gpt-4o-mini", 1).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let page = text(&get(&app, "/dashboard?group_by=project", &[("authorization", &bearer)]).await);
    let (count_a, sum_a) = records_sum(&app, &a.project_id).await;
    let (count_b, sum_b) = records_sum(&app, &b.project_id).await;
    assert_eq!((count_a, count_b), (5, 1));
    // gpt-4o (1000 * 2.5 + 100 * 10) / 1e6 = 0.0035; gpt-4o-mini 0.00021.
    assert_eq!(sum_a, Decimal::from_str("0.01092").unwrap());
    assert_eq!(group_cost(&page, &a.project_id), Some(sum_a));
    assert_eq!(group_cost(&page, &b.project_id), Some(sum_b));
    assert!(page.contains(&format!(
        r#"id="total-cost"><span title="${}" data-usd="{}""#,
        sum_a + sum_b,
        sum_a + sum_b
    )));
    // Today's bar holds the same total.
    let today = chrono::Utc::now().date_naive();
    assert!(page.contains(&format!(r#"data-day="{today}" data-usd="{}""#, sum_a + sum_b)), "{page}");

    // By model within project a: drilling in keeps the other project out.
    let by_model = text(
        &get(
            &app,
            &format!("/dashboard?group_by=model&project_id={}", a.project_id),
            &[("authorization", &bearer)],
        )
        .await,
    );
    assert_eq!(group_cost(&by_model, "gpt-4o"), Some(Decimal::from_str("0.0105").unwrap()));
    assert_eq!(group_cost(&by_model, "gpt-4o-mini"), Some(Decimal::from_str("0.00042").unwrap()));
    // A range without the records shows none.
    let past =
        text(&get(&app, "/dashboard?from=2020-01-01&to=2020-01-31", &[("authorization", &bearer)]).await);
    assert_eq!(group_cost(&past, &a.project_id), None);
    assert!(past.contains("No requests in this range."));
}

#[tokio::test]
async fn names_that_clients_choose_are_shown_escaped() {
    let app = spawn_app(upstream).await;
    let a = app.seed().await;
    let model = r#"<img src=x onerror="alert(1)">"#;
    spend(&app, &a.key, model, 1).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for grouping in ["model", "project"] {
        let page =
            text(&get(&app, &format!("/dashboard?group_by={grouping}"), &[("authorization", &bearer)]).await);
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;img src=x onerror=&quot;alert(1)&quot;&gt;"), "{grouping}");
    }
}

#[tokio::test]
async fn a_wrong_parameter_is_a_page_that_names_it() {
    let app = spawn_app(upstream).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for (query, field) in [
        ("from=2026-13-01", "from"),
        ("from=2026-02-01&to=2026-01-01", "from"),
        ("from=2024-01-01&to=2026-01-01", "366 days"),
        ("group_by=colour", "group_by"),
        ("project_id=nope", "project_id"),
        // Dates at chrono's ends used to overflow the range arithmetic (a panic).
        ("to=-262143-01-01", "to"),
        ("from=-262143-01-01&to=-262143-01-02", "to: must be between"),
        ("from=%2B262142-12-31&to=%2B262142-12-31", "to: must be"),
        ("from=1969-12-31", "between 1970-01-01 and 9999-12-30"),
    ] {
        let got = get(&app, &format!("/dashboard?{query}"), &[("authorization", &bearer)]).await;
        assert_eq!(got.status, 400, "{query}");
        assert_eq!(got.headers["content-type"], "text/html; charset=utf-8");
        assert!(text(&got).contains(field), "{query}: {}", text(&got));
    }
    let long = format!("/dashboard?model={}", "m".repeat(2000));
    assert_eq!(get(&app, &long, &[("authorization", &bearer)]).await.status, 400);
    let last = get(&app, "/dashboard?from=9999-12-01&to=9999-12-30", &[("authorization", &bearer)]).await;
    assert_eq!(last.status, 200, "the last representable days are a page");
}

mod browser {
    //! The dashboard in a real headless Chromium, through chromedriver (WebDriver).

    use std::path::PathBuf;
    use std::process::Stdio;

    use fantoccini::{Client, ClientBuilder, Locator};

    use super::*;

    /// A chromedriver on a free port, stopped when dropped.
    struct Driver {
        _process: tokio::process::Child,
        url: String,
    }

    async fn chromedriver() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver is not installed: apt-get install chromium chromium-driver (.ci/run does)");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Driver { _process: process, url };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not start on port {port}");
    }

    async fn browser(driver: &Driver) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--window-size=1280,2200"]}),
        );
        // fantoccini's TLS (unused: chromedriver speaks plain HTTP) needs a crypto provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        ClientBuilder::rustls().expect("TLS roots").capabilities(caps).connect(&driver.url).await.unwrap()
    }

    /// Where CI keeps the screenshot (under target/).
    fn screenshot_path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name)
    }

    async fn attr(c: &Client, css: &str, name: &str) -> Option<String> {
        c.find(Locator::Css(css)).await.unwrap().attr(name).await.unwrap()
    }

    #[tokio::test]
    async fn an_operator_signs_in_reads_the_spend_changes_the_range_and_sees_a_budget() {
        let app = spawn_app(upstream).await;
        let a = app.seed().await;
        let b = app.seed().await;
        let budget = app
            .admin(
                "POST",
                "/v1/budgets",
                Some(json!({"scope": "project", "scope_id": a.project_id, "limit_usd": "1", "period": "monthly", "hard": true})),
            )
            .await
            .json();
        let budget_id = budget["id"].as_str().unwrap().to_owned();
        let hook = format!("{}/hook", app.mock.url());
        let alert = app
            .admin(
                "POST",
                "/v1/alert-configs",
                Some(json!({"budget_id": budget_id, "threshold_percent": 1, "webhook_url": hook})),
            )
            .await;
        assert_eq!(alert.status, 201);
        spend(&app, &a.key, "gpt-4o", 3).await;
        spend(&app, &a.key, "gpt-4o-mini", 2).await;
        spend(&app, &b.key, "gpt-4o-mini", 1).await;
        let (_, sum_a) = records_sum(&app, &a.project_id).await;
        // The alert fired (1% of $1 crossed) and its webhook was delivered.
        let mut delivered = false;
        for _ in 0..100 {
            let alerts = app.admin("GET", "/v1/alerts", None).await.json();
            if alerts["data"]
                .as_array()
                .is_some_and(|l| l.iter().any(|a| a["delivery_status"] == "delivered"))
            {
                delivered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(delivered, "the alert was delivered");

        let driver = chromedriver().await;
        let c = browser(&driver).await;
        let base = format!("http://{}", app.admin);

        // Sign in through the form.
        c.goto(&format!("{base}/dashboard")).await.unwrap();
        c.find(Locator::Css("#token")).await.unwrap().send_keys(ADMIN_TOKEN).await.unwrap();
        c.find(Locator::Css("#sign-in")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Css("#spend")).await.unwrap();
        assert_eq!(c.current_url().await.unwrap().path(), "/dashboard");
        // The session cookie is out of the page's reach.
        let visible = c.execute("return document.cookie", vec![]).await.unwrap();
        assert_eq!(visible, json!(""), "the session cookie is HttpOnly");

        // The project's spend is the sum of its cost records.
        let row = format!(r#"tr.group[data-group="{}"] td.cost span"#, a.project_id);
        assert_eq!(attr(&c, &row, "data-usd").await.unwrap(), sum_a.to_string());
        let shown = c.find(Locator::Css(&row)).await.unwrap().text().await.unwrap();
        assert_eq!(shown, format!("${sum_a}"));
        let bars = c.find_all(Locator::Css("svg.chart rect")).await.unwrap();
        assert!(!bars.is_empty(), "today's spend is drawn");

        // The budget's bar: spent 1.092% of its $1, the rest remaining.
        let budget_row = format!(r#"tr.budget[data-budget="{budget_id}"]"#);
        assert_eq!(attr(&c, &format!("{budget_row} .bar .spent"), "data-percent").await.unwrap(), "1.09");
        let spent_bar = c.find(Locator::Css(&format!("{budget_row} .bar .spent"))).await.unwrap();
        let whole_bar = c.find(Locator::Css(&format!("{budget_row} .bar"))).await.unwrap();
        let (_, _, spent_w, _) = spent_bar.rectangle().await.unwrap();
        let (_, _, whole_w, _) = whole_bar.rectangle().await.unwrap();
        assert!(spent_w > 0.0 && (spent_w / whole_w - 0.0109).abs() < 0.005, "{spent_w} of {whole_w}");
        let remaining = c.find(Locator::Css(&format!("{budget_row} .remaining span"))).await.unwrap();
        assert_eq!(remaining.attr("data-usd").await.unwrap().unwrap(), (Decimal::ONE - sum_a).to_string());
        // The latest requests and the fired alert with its delivery.
        assert_eq!(c.find_all(Locator::Css("tr.record")).await.unwrap().len(), 6);
        let delivery = c.find(Locator::Css("tr.alert .badge")).await.unwrap().text().await.unwrap();
        assert_eq!(delivery, "delivered");
        std::fs::write(screenshot_path("dashboard.png"), c.screenshot().await.unwrap()).unwrap();

        // Change the date range with the form: a past month has no spend.
        c.execute(
            "document.getElementById('from').value = '2020-01-01'; document.getElementById('to').value = '2020-01-31';",
            vec![],
        )
        .await
        .unwrap();
        c.find(Locator::Css("#apply")).await.unwrap().click().await.unwrap();
        for _ in 0..100 {
            if c.current_url().await.unwrap().query().is_some_and(|q| q.contains("from=2020-01-01")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(c.current_url().await.unwrap().query().unwrap().contains("to=2020-01-31"));
        assert_eq!(attr(&c, "#total-cost span", "data-usd").await.unwrap(), "0");
        assert!(c.find_all(Locator::Css(&row)).await.unwrap().is_empty());
        std::fs::write(screenshot_path("dashboard-empty-range.png"), c.screenshot().await.unwrap()).unwrap();

        // Back to today with the quick link: the spend is there again.
        c.find(Locator::LinkText("today")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Css(&row)).await.unwrap();
        assert_eq!(attr(&c, &row, "data-usd").await.unwrap(), sum_a.to_string());

        // Signing out ends the session.
        c.find(Locator::Css("header button")).await.unwrap().click().await.unwrap();
        c.wait().for_element(Locator::Css("#token")).await.unwrap();
        c.goto(&format!("{base}/dashboard")).await.unwrap();
        assert!(c.find_all(Locator::Css("#spend")).await.unwrap().is_empty());
        c.close().await.unwrap();
    }
}

/// A tollgate whose admin listener has no token (allowed on loopback only).
async fn spawn_tokenless() -> (TestApp, tempfile::TempDir) {
    let mut app = spawn_app(upstream).await;
    app.shutdown().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[database]\nurl = \"sqlite://{}\"\n\
         [log]\nfilter = \"warn\"\n",
        dir.path().join("tollgate.db").display()
    );
    let config = tollgate::config::Config::from_toml_with_env(&text, &|_| None).unwrap();
    let running = tollgate::app::start(config).await.unwrap();
    app.proxy = running.proxy_addr;
    app.admin = running.admin_addr;
    app.running = Some(running);
    (app, dir)
}

async fn request(app: &TestApp, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Got {
    let mut req = Request::builder().method(method).uri(format!("http://{}{path}", app.admin));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    send(&client(), req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await
}

#[tokio::test]
async fn a_web_page_cannot_write_through_the_operators_browser() {
    let app = spawn_app(upstream).await;
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let org = |name: &str| format!(r#"{{"name": "{name}"}}"#);
    // A form or fetch from another site: refused before anything is read or written.
    for headers in [
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")],
        vec![("origin", "null"), ("sec-fetch-site", "same-site")],
    ] {
        let mut all = headers.clone();
        all.push(("authorization", &bearer));
        let got = request(&app, "POST", "/v1/organizations", &all, &org(&unique("evil"))).await;
        assert_eq!(got.status, 403, "{headers:?}");
        let got = request(&app, "POST", "/dashboard/logout", &headers, "").await;
        assert_eq!(got.status, 403, "{headers:?}");
    }
    let listed = app.admin("GET", "/v1/organizations", None).await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 0, "nothing was written");
    // The same page of the listener itself, and every client that is not a browser.
    let own = format!("http://{}", app.admin);
    let same = [("origin", own.as_str()), ("sec-fetch-site", "same-origin"), ("authorization", &bearer)];
    assert_eq!(request(&app, "POST", "/v1/organizations", &same, &org(&unique("ok"))).await.status, 201);
    let bare = [("authorization", bearer.as_str())];
    assert_eq!(request(&app, "POST", "/v1/organizations", &bare, &org(&unique("cli"))).await.status, 201);
    // The bearer scheme's name is case-insensitive (RFC 9110).
    let lower = format!("bearer {ADMIN_TOKEN}");
    assert_eq!(request(&app, "GET", "/v1/organizations", &[("authorization", &lower)], "").await.status, 200);
    assert_eq!(
        request(&app, "GET", "/v1/organizations", &[("authorization", ADMIN_TOKEN)], "").await.status,
        401
    );
}

#[tokio::test]
async fn without_a_token_only_a_loopback_host_name_is_served() {
    let (app, _dir) = spawn_tokenless().await;
    let port = app.admin.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".into(),
        format!("[::1]:{port}"),
    ] {
        let got = request(&app, "GET", "/v1/organizations", &[("host", &host)], "").await;
        assert_eq!(got.status, 200, "{host}");
    }
    // DNS rebinding: a page at evil.example whose name now points at 127.0.0.1.
    for host in
        [format!("evil.example:{port}"), "evil.example".into(), format!("127.0.0.1.evil.example:{port}")]
    {
        let got = request(&app, "GET", "/v1/organizations", &[("host", &host)], "").await;
        assert_eq!(got.status, 403, "{host}");
        let got = request(&app, "GET", "/dashboard", &[("host", &host)], "").await;
        assert_eq!(got.status, 403, "{host}");
    }
    // The dashboard itself opens without signing in.
    let page = request(&app, "GET", "/dashboard", &[], "").await;
    assert_eq!(page.status, 200);
    assert!(!text(&page).contains("Sign out"));
}

/// On PostgreSQL, every replica's dashboard shows the same spend (the one database) and
/// the budget's window as the database has it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_every_replica_shows_the_spend_of_all() {
    use crate::db::{Backend, TestDb};
    use crate::replicas::{eventually, hard_budget, Replica};
    let mock = Mock::start(crate::budgets::mini_reply).await;
    let db = TestDb::new(Backend::Postgres).await;
    let a = Replica::start(&db.url, &mock.url(), "").await;
    let b = Replica::start(&db.url, &mock.url(), "").await;
    let s = seed_at(a.admin).await;
    let budget = hard_budget(&a, "project", &s.project_id, "1").await;
    for replica in [&a, &b, &a] {
        let got = send(
            &client(),
            openai_post(&replica.url("/v1/chat/completions"), &s.key, &crate::budgets::mini_body()),
        )
        .await;
        assert_eq!(got.status, 200, "{:?}", got.body);
    }
    let records = || async {
        let page =
            admin_at(a.admin, "GET", &format!("/v1/cost-records?project_id={}", s.project_id), None).await;
        page.json()["data"].as_array().unwrap().clone()
    };
    eventually(Duration::from_secs(10), "three cost records", || async { records().await.len() == 3 }).await;
    let sum: Decimal =
        records().await.iter().map(|r| Decimal::from_str(r["cost_usd"].as_str().unwrap()).unwrap()).sum();
    assert!(sum > Decimal::ZERO);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    for replica in [&a, &b] {
        let req = Request::get(format!("http://{}/dashboard?group_by=project", replica.admin))
            .header("authorization", &bearer)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let page = text(&send(&client(), req).await);
        assert_eq!(group_cost(&page, &s.project_id), Some(sum), "{}", replica.admin);
        let row = page.split(&format!(r#"data-budget="{budget}""#)).nth(1).expect("the budget's row");
        let spent = row.split(r#"data-usd=""#).nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(Decimal::from_str(spent).unwrap(), sum, "the window's spend as the database has it");
    }
}

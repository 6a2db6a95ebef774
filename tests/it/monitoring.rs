//! What operators and their tools see: `/metrics`, `/healthz` and `/readyz` on the API and on
//! a worker process, and the `/ops` page as a person sees it in a real browser.

use std::time::Duration;

use integration_tests::{Engine, Fault, OPS_TOKEN, TestApp, TestSmtp, on_both_engines};
use serde_json::json;

use crate::ticket_path::{flow_with_ticket_step, open_ticket};

on_both_engines!(
    metrics_and_health_endpoints_report_the_service,
    callers_cannot_add_metric_label_sets,
    the_ops_page_shows_queue_workers_and_failures
);

async fn metrics_and_health_endpoints_report_the_service(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step) =
        flow_with_ticket_step(&app, "Destek", "offline_message", &["fwd@example.com"]).await;
    let named = app
        .gql(
            Some(&app.widget_key),
            "mutation OpenFromWidget($s: ID!) { openTicket(input: { stepId: $s, message: \"hi\" }) { ticket { id } } }",
            json!({ "s": step }),
        )
        .await;
    assert!(named.get("errors").is_none(), "{named:#}");
    let denied = app
        .gql(
            Some(&app.widget_key),
            "query ListFlows { flows { id } }",
            json!({}),
        )
        .await;
    assert!(denied.get("errors").is_some());
    assert!(
        smtp.wait_until(Duration::from_secs(15), |m| !m.is_empty())
            .await
    );

    assert_eq!(app.get("/healthz", None).await.0, 200);
    assert_eq!(app.get("/readyz", None).await.0, 200);
    let expected = [
        "ticketing_graphql_requests_total{operation=\"openTicket\"} 1",
        "ticketing_graphql_errors_total{operation=\"flows\",code=\"FORBIDDEN\"} 1",
        "ticketing_graphql_request_duration_seconds_bucket{operation=\"openTicket\"",
        "ticketing_jobs_total{kind=\"route\",outcome=\"routed\"} 1",
        "ticketing_jobs_total{kind=\"send\",outcome=\"sent\"} 1",
        "ticketing_delivery_latency_seconds_count 1",
        "ticketing_deliveries{status=\"SENT\"} 1",
        "ticketing_jobs{status=\"pending\"} 0",
        "ticketing_oldest_pending_delivery_age_seconds 0",
        "ticketing_backlog_accounts 0",
        "ticketing_backlog_tickets 0",
        "ticketing_backlog_largest_account 0",
    ];
    // The mail arrives a moment before the worker records it and ends the job.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let text = loop {
        let (status, text) = metrics(&app).await;
        assert_eq!(status, 200);
        if expected.iter().all(|e| text.contains(e)) || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for expected in expected {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }

    // A worker process's own endpoints (the real binary, idle beside the embedded worker).
    let addr = integration_tests::free_local_addr();
    let process = app.start_worker_process_on(&smtp, 1, &addr);
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    for (path, needle) in [
        ("/healthz", "ok"),
        ("/readyz", "ready"),
        ("/metrics", "ticketing_deliveries{status=\"SENT\"} 1"),
    ] {
        let body = loop {
            match client.get(format!("http://{addr}{path}")).send().await {
                Ok(response) if response.status().as_u16() == 200 => {
                    break response.text().await.unwrap();
                }
                other => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{path} on the worker process: {other:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        assert!(body.contains(needle), "{path}: {body}");
    }
    drop(process);
    app.stop().await;
}

async fn metrics(app: &TestApp) -> (u16, String) {
    let response = reqwest::get(&app.metrics_url).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Callers cannot add label sets to `/metrics`: operation names, unknown fields and keys,
/// broken documents and odd error codes all land on labels from a fixed set (the schema's
/// root fields and a few words), and the public port does not serve `/metrics` at all.
async fn callers_cannot_add_metric_label_sets(engine: Engine) {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    assert_eq!(app.get("/metrics", None).await.0, 404, "public port");
    let series = |text: &str| -> std::collections::BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("ticketing_graphql_"))
            .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series.to_owned()))
            .collect()
    };
    // Warm up: one of each shape.
    let shapes = |i: usize| {
        [
            (None, format!("query Made{i}Up {{ __typename }}")),
            (
                Some(app.admin_key.clone()),
                format!("query Q{i} {{ agents {{ id }} }}"),
            ),
            (None, format!("query R{i} {{ agents {{ id }} }}")),
            (
                Some(format!("tk_widget_made_up_{i}")),
                format!("query S{i} {{ flows {{ id }} }}"),
            ),
            (
                Some(app.admin_key.clone()),
                format!("query T{i} {{ noSuch{i} }}"),
            ),
            (
                Some(app.admin_key.clone()),
                format!("query U{i} {{ agents {{ id "),
            ),
            (
                Some(app.admin_key.clone()),
                format!("query V{i} {{ a: agents {{ id }} b: routingRules {{ id }} }}"),
            ),
        ]
    };
    for (key, query) in shapes(0) {
        app.gql(key.as_deref(), &query, json!({})).await;
    }
    let before = series(&metrics(&app).await.1);
    for i in 1..=200 {
        for (key, query) in shapes(i) {
            app.gql(key.as_deref(), &query, json!({})).await;
        }
    }
    let after = series(&metrics(&app).await.1);
    let added: Vec<_> = after.difference(&before).collect();
    assert!(added.is_empty(), "1,400 requests added series: {added:#?}");
    for needle in [
        "operation=\"invalid\"",
        "operation=\"multiple\"",
        "operation=\"introspection\"",
        "operation=\"agents\"",
    ] {
        assert!(
            after.iter().any(|s| s.contains(needle)),
            "{needle} in {after:#?}"
        );
    }
    assert!(
        !after
            .iter()
            .any(|s| s.contains("Made") || s.contains("noSuch")),
        "{after:#?}"
    );
    app.stop().await;
}

/// Runs headless Chromium on `url` with `extra` flags and a profile of its own; what it
/// printed: the page's DOM once loaded (`--dump-dom`).
pub(crate) async fn dump_dom(
    browser: std::path::PathBuf,
    url: &str,
    extra: &[&str],
) -> std::process::Output {
    let profile = std::env::temp_dir().join(format!(
        "chromium-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    let mut command = std::process::Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("run chromium");
    let _ = std::fs::remove_dir_all(profile);
    output
}

/// Chromium from Debian, headless, as `.ci/run` installs it.
pub(crate) fn chromium() -> Option<std::path::PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
}

async fn the_ops_page_shows_queue_workers_and_failures(engine: Engine) {
    let Some(browser) = chromium() else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true and Chromium is not installed"
        );
        println!("SKIPPED (did not run): the /ops browser test needs Debian's chromium package");
        return;
    };
    let smtp = TestSmtp::start();
    smtp.fail_rcpt("bounce@example.com", Fault::Permanent, usize::MAX);
    let Some(app) = TestApp::spawn(engine, &smtp).await else {
        return;
    };
    let (_, step) = flow_with_ticket_step(
        &app,
        "Destek",
        "TICKET_TOPIC_FOO_BAR",
        &["bounce@example.com", "ok@example.com"],
    )
    .await;
    open_ticket(&app, &app.widget_key, &step, "<script>alert(1)</script>").await;
    app.wait_for(
        Duration::from_secs(20),
        "{ queueStats { deliveries { sent failed } } }",
        json!({}),
        |d| {
            d["queueStats"]["deliveries"]["failed"] == 1
                && d["queueStats"]["deliveries"]["sent"] == 1
        },
    )
    .await;

    // Without the token there is nothing to see.
    assert_eq!(app.get("/ops", None).await.0, 401);
    assert_eq!(
        app.get("/ops", Some(&app.admin_key)).await.0,
        401,
        "an account key is not the operator's"
    );

    let url = app
        .base_url()
        .replace("http://", &format!("http://ops:{OPS_TOKEN}@"))
        + "/ops";
    let output = dump_dom(browser, &url, &[]).await;
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "Ticket delivery",
        "Workers",
        "alive",
        "Latest failures",
        "bounce@example.com",
        "TICKET_TOPIC_FOO_BAR",
        "550",
    ] {
        assert!(
            dom.contains(expected),
            "the page lacks {expected:?}:\n{dom}"
        );
    }
    assert!(
        dom.contains("<th>Failed</th><td class=\"n\">1</td>"),
        "{dom}"
    );
    assert!(dom.contains("<th>Sent</th><td class=\"n\">1</td>"), "{dom}");
    assert!(
        !dom.contains("<script>alert"),
        "nothing from visitors is rendered as HTML"
    );
    app.stop().await;
}

/// The alerting rules and the dashboard in `monitoring/` use only metrics the service
/// exports: after a ticket is mailed and a request fails, every `ticketing_*` name they
/// query is on `/metrics` (a renamed metric fails here, not in an operator's silent alert).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_and_the_dashboard_query_exported_metrics() {
    let smtp = TestSmtp::start();
    let Some(app) = TestApp::spawn(Engine::Sqlite, &smtp).await else {
        return;
    };
    let (_, step) =
        flow_with_ticket_step(&app, "Destek", "offline_message", &["a@example.com"]).await;
    open_ticket(&app, &app.widget_key, &step, "hi").await;
    assert!(
        smtp.wait_until(Duration::from_secs(20), |m| !m.is_empty())
            .await
    );
    let failed = app
        .gql(None, "{ tickets { edges { cursor } } }", json!({}))
        .await;
    assert!(failed.get("errors").is_some());
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../monitoring");
    let mut queried = std::collections::BTreeSet::new();
    let dashboard = std::fs::read_to_string(folder.join("dashboard.json")).unwrap();
    let panels: serde_json::Value =
        serde_json::from_str(&dashboard).expect("dashboard.json is JSON");
    assert!(panels["panels"].as_array().is_some_and(|p| !p.is_empty()));
    for file in ["alerts.yml", "dashboard.json"] {
        let text = std::fs::read_to_string(folder.join(file)).unwrap();
        for (i, _) in text.match_indices("ticketing_") {
            let name: String = text[i..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .unwrap_or(&name)
                .to_owned();
            queried.insert(name);
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let exported = metrics(&app).await.1;
        let missing: Vec<&String> = queried
            .iter()
            .filter(|name| {
                // The name itself, or a histogram's series of it; not a longer name.
                !exported.lines().any(|l| {
                    l.strip_prefix(name.as_str()).is_some_and(|rest| {
                        ["{", " ", "_bucket{", "_sum", "_count"]
                            .iter()
                            .any(|next| rest.starts_with(next))
                    })
                })
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "queried in monitoring/ but not exported: {missing:?}\n{exported}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await;
}

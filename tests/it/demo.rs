//! The first minute, in a real browser: the `api` binary's first start on an empty folder (the
//! README's run command) makes a demo whose page at `/` runs the chat widget; Chromium chats
//! through the demo flow (with a re-asked answer and a page reload mid-conversation) to a
//! ticket, the page says where the e-mail went, and the `.eml` file is there.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::webdriver::{Browser, installed};

/// The `api` binary beside this test binary.
fn api_binary() -> std::path::PathBuf {
    integration_tests::worker_binary().with_file_name("api")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_chats_with_the_demo_in_a_browser_and_finds_the_mail() {
    if !installed() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true and chromium or chromium-driver is not installed"
        );
        println!("SKIPPED (did not run): needs Debian's chromium and chromium-driver packages");
        return;
    }
    integration_tests::init_test_process();
    let dir = std::env::temp_dir().join(format!("ticketing-demo-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = integration_tests::free_local_addr();
    let mut command = Command::new(api_binary());
    command.current_dir(&dir);
    for var in ["DATABASE_URL", "SMTP_URL", "OUTBOX_DIR", "EMBEDDED_WORKER"] {
        command.env_remove(var);
    }
    let mut server = command
        .env("LISTEN_ADDR", &addr)
        .env("METRICS_LISTEN_ADDR", integration_tests::free_local_addr())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start api");
    let stdout = server.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.split("open ").nth(1).map(str::to_owned))
    })
    .await
    .unwrap()
    .expect("the first start names the demo page");
    assert_eq!(url, format!("http://{addr}/"));
    let client = reqwest::Client::new();
    let start = Instant::now();
    while client.get(format!("{url}healthz")).send().await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "api did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let browser = Browser::start().await;
    browser.open(&url).await;
    browser.wait_for("What is your e-mail address?").await;
    browser.type_into(".tw-input", "not an address").await;
    browser.click(".tw-send").await;
    browser
        .wait_for("does not look like an e-mail address")
        .await;
    browser.type_into(".tw-input", "ayse@example.com").await;
    browser.click(".tw-send").await;
    browser.wait_for("How can we help?").await;

    // A reload keeps the conversation: the same lines, and it goes on where it was.
    browser.open(&url).await;
    let html = browser.wait_for("How can we help?").await;
    assert!(html.contains("ayse@example.com"), "{html}");
    assert_eq!(
        html.matches("What is your e-mail address?").count(),
        2,
        "the question, asked again once, and nothing more: {html}"
    );
    browser
        .type_into(".tw-input", "My order has not arrived")
        .await;
    browser.click(".tw-send").await;
    browser.wait_for("Görüşmek üzere!").await;
    let html = browser.wait_for("was opened.").await;
    assert!(html.contains("Talep alındı"), "{html}");
    assert!(
        html.contains("Ticket <span data-ticket-number=\"\">#1</span>"),
        "{html}"
    );
    assert!(html.contains(".eml file"), "{html}");
    assert!(
        !html.contains("id=\"where\" role=\"status\" hidden"),
        "{html}"
    );
    drop(browser);

    // The notification, as an .eml file where the page said.
    let outbox = dir.join("data/outbox");
    let start = Instant::now();
    let mail = loop {
        let found = std::fs::read_dir(&outbox).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .find(|m| m.contains("To: demo@example.com"))
        });
        if let Some(mail) = found {
            break mail;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no .eml for demo@example.com"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(mail.contains("offline_message"), "{mail}");
    assert!(mail.contains("My order has not arrived"), "{mail}");
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(dir);
}

//! The README's run command, as a new user meets it: `api` on an empty folder starts on a
//! SQLite file under `./data`, prints a demo account's keys once, serves GraphQL, runs the
//! worker inside, and writes mail as `.eml` files without `SMTP_URL`. Also `api
//! create-account`, and a clean exit on SIGTERM.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a panic is how a test fails"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const API: &str = env!("CARGO_BIN_EXE_api");

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ticketing-run-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn api(dir: &Path) -> Command {
    let mut cmd = Command::new(API);
    cmd.current_dir(dir);
    for var in [
        "DATABASE_URL",
        "SMTP_URL",
        "OUTBOX_DIR",
        "EMBEDDED_WORKER",
        "LISTEN_ADDR",
        "MAIL_FROM",
    ] {
        cmd.env_remove(var);
    }
    // Tests run side by side: each server gets its own metrics port (the default is 9090).
    cmd.env("METRICS_LISTEN_ADDR", free_addr().to_string());
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A minimal HTTP/1.1 exchange; the service closes the connection after one request.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn gql(addr: SocketAddr, key: &str, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables }).to_string();
    let (status, body) = http(addr, "POST", "/graphql", Some(key), &body).expect("GraphQL request");
    assert_eq!(status, 200, "{body}");
    let value: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(value.get("errors").is_none(), "{value:#}");
    value["data"].clone()
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[test]
fn run_command_starts_the_embedded_service_and_writes_eml_files() {
    let dir = temp_dir();
    let addr = free_addr();
    let mut server = Server(
        api(&dir)
            .env("LISTEN_ADDR", addr.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start api"),
    );

    // The demo account's keys are printed once.
    let stdout = server.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut admin, mut widget, mut demo) = (None, None, None);
    while admin.is_none() || widget.is_none() || demo.is_none() {
        let line = lines
            .next()
            .expect("api exited before printing keys")
            .unwrap();
        if let Some(url) = line.trim().split("open ").nth(1) {
            demo = Some(url.to_owned());
        }
        if let Some(k) = line.trim().strip_prefix("admin key:") {
            admin = Some(k.trim().to_owned());
        }
        if let Some(k) = line.trim().strip_prefix("widget key:") {
            widget = Some(k.trim().to_owned());
        }
    }
    let (admin, widget) = (admin.unwrap(), widget.unwrap());
    assert!(admin.starts_with("tk_admin_") && widget.starts_with("tk_widget_"));

    let start = Instant::now();
    while http(addr, "GET", "/healthz", None, "").map(|r| r.0) != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "api did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        http(addr, "GET", "/readyz", None, "").map(|r| r.0),
        Some(200)
    );
    // The demo page and the widget it loads.
    assert_eq!(demo.unwrap(), format!("http://{addr}/"));
    let (status, page) = http(addr, "GET", "/", None, "").unwrap();
    assert_eq!(status, 200);
    assert!(
        page.contains("src=\"/widget.js\"") && page.contains(&widget),
        "{page}"
    );
    let (status, script) = http(addr, "GET", "/widget.js", None, "").unwrap();
    assert_eq!(status, 200);
    assert!(script.contains("startConversation"));
    assert!(
        dir.join("data/tickets.db").exists(),
        "the SQLite file lives under ./data"
    );

    let flow = gql(
        addr,
        &admin,
        "mutation { createFlow(input: { name: \"Destek\" }) { id } }",
        json!({}),
    );
    let step = gql(
        addr,
        &admin,
        "mutation($f: ID!) { addStep(flowId: $f, step: { ticket: { topic: \"offline_message\", confirmationMessage: \"Talep alındı\", forwardEmails: [\"ops@example.com\"] } }) { id } }",
        json!({ "f": flow["createFlow"]["id"] }),
    );
    let opened = gql(
        addr,
        &widget,
        "mutation($s: ID!) { openTicket(input: { stepId: $s, message: \"Merhaba\" }) { confirmationMessage ticket { number } } }",
        json!({ "s": step["addStep"]["id"] }),
    );
    assert_eq!(opened["openTicket"]["confirmationMessage"], "Talep alındı");

    // The in-process worker writes the notification to ./data/outbox (the demo's `*` rule
    // adds a second one, to the demo address).
    let outbox = dir.join("data/outbox");
    let start = Instant::now();
    let eml = loop {
        let found = std::fs::read_dir(&outbox).ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .find(|p| {
                    std::fs::read_to_string(p).is_ok_and(|m| m.contains("To: ops@example.com"))
                })
        });
        if let Some(path) = found {
            break std::fs::read_to_string(path).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no .eml file in {}",
            outbox.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        eml.contains("Subject: [Ticket #1] offline_message"),
        "{eml}"
    );
    assert!(eml.contains("To: ops@example.com"), "{eml}");

    // SIGTERM stops it cleanly.
    let pid = server.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "api did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exit status {status}");

    // `create-account` works on the same file, and a restart prints no second demo account.
    let out = api(&dir)
        .args(["create-account", "Acme Ltd"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(created["accountId"].is_string());
    assert!(
        created["adminKey"]
            .as_str()
            .unwrap()
            .starts_with("tk_admin_")
    );
    assert!(
        created["widgetKey"]
            .as_str()
            .unwrap()
            .starts_with("tk_widget_")
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "one JSON line"
    );

    let addr = free_addr();
    let mut again = Server(
        api(&dir)
            .env("LISTEN_ADDR", addr.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while http(addr, "GET", "/healthz", None, "").map(|r| r.0) != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "api did not come up again"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The demo page stays, and no second demo flow was made.
    assert_eq!(http(addr, "GET", "/", None, "").unwrap().0, 200);
    let flows = gql(addr, &admin, "{ flows { name } }", json!({}));
    assert_eq!(
        flows["flows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["name"] == "Demo")
            .count(),
        1
    );
    let _ = Command::new("kill")
        .args(["-TERM", &again.0.id().to_string()])
        .status();
    let _ = again.0.wait();
    let mut printed = String::new();
    again
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    assert!(
        !printed.contains("admin key"),
        "a second start must not create another demo account: {printed}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

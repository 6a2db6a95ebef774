//! The baseline of `bench/worker-throughput`: lettre's own pooled SMTP transport sending N
//! small messages to a sink, `C` at a time, with nothing else around it (no database, no
//! queue). Prints mails per second.
//!
//! `cargo run --release -p worker --example lettre_pool -- 127.0.0.1:2525 4000 16`

#![allow(
    clippy::expect_used,
    reason = "a benchmark driver stops at the first failed send"
)]

use std::sync::Arc;
use std::time::Instant;

use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:2525".into());
    let count: usize = args.next().unwrap_or_else(|| "4000".into()).parse()?;
    let concurrency: usize = args.next().unwrap_or_else(|| "16".into()).parse()?;
    let (host, port) = addr.rsplit_once(':').ok_or("expected host:port")?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port.parse()?)
        .pool_config(PoolConfig::new().max_size(u32::try_from(concurrency)?))
        .build();
    let transport = Arc::new(transport);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let transport = Arc::clone(&transport);
        let share = count / concurrency + usize::from(worker < count % concurrency);
        tasks.spawn(async move {
            for i in 0..share {
                let message = Message::builder()
                    .from("tickets@example.org".parse().expect("address"))
                    .to(format!("agent{}@example.com", i % 4)
                        .parse()
                        .expect("address"))
                    .subject(format!("[Ticket #{i}] offline_message"))
                    .body(format!("ticket {worker}-{i}"))
                    .expect("message");
                transport.send(message).await.expect("send");
            }
        });
    }
    tasks.join_all().await;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "lettre pooled transport: {count} mails in {seconds:.2} s = {:.0} mails/s ({concurrency} connections)",
        count as f64 / seconds
    );
    Ok(())
}

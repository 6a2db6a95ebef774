//! The baselines of `bench/run worker`: N small messages sent to a sink, `C` at a time, with
//! nothing else around them (no database, no queue). Prints mails per second.
//!
//! - `pooled` (the default): lettre's own pooled SMTP transport, Nagle's algorithm on.
//! - `nodelay`: lettre's SMTP client over the worker's own no-delay connections
//!   (`domain::infra::smtp::SmtpPool`), the limit the worker's drain is measured against.
//!
//! `cargo run --release -p worker --example lettre_pool -- 127.0.0.1:2525 4000 16 [nodelay]`

#![allow(
    clippy::expect_used,
    reason = "a benchmark driver stops at the first failed send"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::infra::smtp::{SmtpPool, SmtpTarget, StartTls};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Where a message goes.
#[derive(Clone)]
enum Via {
    Pooled(Arc<AsyncSmtpTransport<Tokio1Executor>>),
    NoDelay(SmtpPool),
}

impl Via {
    async fn send(&self, message: Message) {
        match self {
            Via::Pooled(transport) => {
                transport.send(message).await.expect("send");
            }
            Via::NoDelay(pool) => {
                pool.send(message.envelope(), &message.formatted())
                    .await
                    .expect("send");
            }
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:2525".into());
    let count: usize = args.next().unwrap_or_else(|| "4000".into()).parse()?;
    let concurrency: usize = args.next().unwrap_or_else(|| "16".into()).parse()?;
    let nodelay = args.next().is_some_and(|mode| mode == "nodelay");
    let (host, port) = addr.rsplit_once(':').ok_or("expected host:port")?;
    let via = if nodelay {
        Via::NoDelay(SmtpPool::new(
            SmtpTarget {
                host: host.to_owned(),
                port: port.parse()?,
                tls: StartTls::Never,
                credentials: None,
                connect_timeout: Duration::from_secs(10),
            },
            concurrency,
        ))
    } else {
        Via::Pooled(Arc::new(
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(port.parse()?)
                .pool_config(PoolConfig::new().max_size(u32::try_from(concurrency)?))
                .build(),
        ))
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let via = via.clone();
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
                via.send(message).await;
            }
        });
    }
    tasks.join_all().await;
    let seconds = started.elapsed().as_secs_f64();
    let name = if nodelay {
        "lettre over no-delay connections"
    } else {
        "lettre pooled transport"
    };
    println!(
        "{name}: {count} mails in {seconds:.2} s = {:.0} mails/s ({concurrency} connections)",
        count as f64 / seconds
    );
    Ok(())
}

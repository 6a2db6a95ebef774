//! Our own pool of SMTP connections over sockets with `TCP_NODELAY`.
//!
//! lettre's pooled transport writes each SMTP command as a small packet on a socket with
//! Nagle's algorithm on; meeting the server's delayed ACKs, that stalls about 40 ms per mail
//! per connection (91 mails/s with 4 connections, measured against postfix's `smtp-sink`).
//! The same lettre SMTP client over a no-delay socket does not stall. So the connections
//! here are lettre's `AsyncSmtpConnection`s on sockets we open ourselves; STARTTLS upgrades
//! the same socket. (`smtps://` keeps lettre's transport: see [`crate::mail::Mailer`].)

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use tokio::sync::Semaphore;

/// Why a send through the pool failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SMTP dialogue failed: a 4xx/5xx reply, TLS, or the connection broke.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The TCP connection could not be made.
    #[error("cannot connect to the SMTP server: {0}")]
    Connect(std::io::Error),
    /// Connecting took longer than the connect timeout.
    #[error("connecting to the SMTP server timed out")]
    Timeout,
    /// The message cannot be sent as it is to this server (non-ASCII without the extension
    /// it needs).
    #[error("{0}")]
    Unsupported(&'static str),
}

impl Error {
    /// A 5xx reply, or a message this server cannot take: retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Smtp(e) if e.is_permanent()) || matches!(self, Error::Unsupported(_))
    }

    /// The server answered (4xx/5xx), as opposed to a connection failing.
    fn is_reply(&self) -> bool {
        matches!(self, Error::Smtp(e) if e.is_transient() || e.is_permanent())
    }
}

/// A connection unused this long is closed rather than reused: servers drop idle sessions.
const MAX_IDLE: Duration = Duration::from_secs(50);

/// Whether and how to use STARTTLS.
#[derive(Clone)]
pub enum StartTls {
    /// Plain TCP.
    Never,
    /// Upgrade when the server offers it.
    Opportunistic(TlsParameters),
    /// Upgrade, or fail without sending anything.
    Required(TlsParameters),
}

/// Where and how to connect.
#[derive(Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: StartTls,
    pub credentials: Option<Credentials>,
    /// Bounds connecting (TCP, greeting, EHLO, STARTTLS, AUTH).
    pub connect_timeout: Duration,
}

/// Where a send failed.
enum Failed {
    /// Before `MAIL FROM` was answered: nothing of this message reached the server.
    BeforeMail(Error),
    /// Later: the server may have taken the message (an I/O error at the end of `DATA`).
    Later(Error),
}

/// Connections to one server, shared by every send of the process: at most `max_open` open at
/// once, in use or idle. At most `max_open` sends run at once (a send waits for its turn), and
/// a send opens a connection only when none is idle, so in-use plus idle never exceeds it.
#[derive(Clone)]
pub struct SmtpPool {
    target: Arc<SmtpTarget>,
    hello: ClientId,
    idle: Arc<Mutex<Vec<(AsyncSmtpConnection, Instant)>>>,
    sending: Arc<Semaphore>,
}

impl SmtpPool {
    /// A pool with at most `max_open` connections open (in use or idle).
    pub fn new(target: SmtpTarget, max_open: usize) -> Self {
        SmtpPool {
            target: Arc::new(target),
            hello: ClientId::default(),
            idle: Arc::new(Mutex::new(Vec::new())),
            sending: Arc::new(Semaphore::new(max_open.max(1))),
        }
    }

    /// Sends one message. A reused connection that turns out broken (the server closed it
    /// while idle) is replaced once, and only when it broke before `MAIL FROM` was answered:
    /// after that the server may have the message, and sending it again here would be a
    /// duplicate outside the worker's bound (the worker records the failure and retries).
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Response, Error> {
        #[allow(clippy::expect_used, reason = "the semaphore is never closed")]
        let _turn = self
            .sending
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        if let Some(mut conn) = self.take_idle() {
            match transmit(&mut conn, envelope, message).await {
                Ok(response) => {
                    self.put_back(conn);
                    return Ok(response);
                }
                Err(Failed::BeforeMail(e)) if !e.is_reply() => {}
                Err(Failed::BeforeMail(e) | Failed::Later(e)) => return Err(e),
            }
        }
        let mut conn = self.connect().await?;
        match transmit(&mut conn, envelope, message).await {
            Ok(response) => {
                self.put_back(conn);
                Ok(response)
            }
            Err(Failed::BeforeMail(e) | Failed::Later(e)) => Err(e),
        }
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE {
                return Some(conn);
            }
            // Too old: dropping closes the socket without a QUIT round trip.
            drop(conn);
        }
        None
    }

    fn put_back(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push((conn, Instant::now()));
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Error> {
        let target = &self.target;
        tokio::time::timeout(target.connect_timeout, async {
            let socket = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(Error::Connect)?;
            socket.set_nodelay(true).map_err(Error::Connect)?;
            let mut conn =
                AsyncSmtpConnection::connect_with_transport(Box::new(socket), &self.hello).await?;
            match &target.tls {
                StartTls::Never => {}
                StartTls::Required(tls) => conn.starttls(tls.clone(), &self.hello).await?,
                StartTls::Opportunistic(tls) => {
                    if conn.server_info().supports_feature(Extension::StartTls) {
                        conn.starttls(tls.clone(), &self.hello).await?;
                    }
                }
            }
            if let Some(credentials) = &target.credentials {
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                    .await?;
            }
            Ok(conn)
        })
        .await
        .unwrap_or(Err(Error::Timeout))
    }
}

/// One message over one connection, as lettre's `send` does it, but telling whether the
/// failure came before the server could have taken the message.
async fn transmit(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Response, Failed> {
    let mut options = Vec::new();
    let non_ascii = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(Failed::BeforeMail(Error::Unsupported(
                "non-ASCII addresses need a server with SMTPUTF8",
            )));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(Failed::BeforeMail(Error::Unsupported(
                "a non-ASCII message needs a server with 8BITMIME",
            )));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    conn.command(Mail::new(envelope.from().cloned(), options))
        .await
        .map_err(|e| Failed::BeforeMail(e.into()))?;
    let rest = async {
        for to in envelope.to() {
            conn.command(Rcpt::new(to.clone(), vec![])).await?;
        }
        conn.command(Data).await?;
        conn.message(message).await
    };
    match rest.await {
        Ok(response) => Ok(response),
        Err(e) => {
            // The session is in an unknown state (a refused recipient, a broken socket):
            // never reuse it.
            conn.abort().await;
            Err(Failed::Later(e.into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    use super::*;

    /// What the fake server does with the `n`th message (counted from 1) it receives.
    #[derive(Clone, Copy)]
    enum AfterData {
        /// Answers 250 after a pause.
        Accept(Duration),
        /// Closes the connection without answering: the message arrived, the reply did not.
        Hangup,
    }

    /// A minimal SMTP server on loopback: counts connections (and the most open at once) and
    /// messages received in full; `plan` decides per message.
    struct FakeServer {
        port: u16,
        connections: Arc<AtomicUsize>,
        most_open: Arc<AtomicUsize>,
        messages: Arc<AtomicUsize>,
    }

    async fn fake_server(plan: fn(usize) -> AfterData) -> FakeServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let most_open = Arc::new(AtomicUsize::new(0));
        let messages = Arc::new(AtomicUsize::new(0));
        let server = FakeServer {
            port,
            connections: connections.clone(),
            most_open: most_open.clone(),
            messages: messages.clone(),
        };
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                most_open.fetch_max(now, Ordering::SeqCst);
                let (open, messages) = (open.clone(), messages.clone());
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 fake ESMTP\r\n").await;
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply: &[u8] = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            let n = messages.fetch_add(1, Ordering::SeqCst) + 1;
                            match plan(n) {
                                AfterData::Accept(pause) => {
                                    tokio::time::sleep(pause).await;
                                    b"250 2.0.0 queued\r\n"
                                }
                                AfterData::Hangup => break,
                            }
                        } else {
                            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                            match verb.as_str() {
                                "EHLO" => b"250-fake\r\n250 8BITMIME\r\n",
                                "DATA" => {
                                    in_data = true;
                                    b"354 go ahead\r\n"
                                }
                                "QUIT" => {
                                    let _ = write.write_all(b"221 bye\r\n").await;
                                    break;
                                }
                                _ => b"250 ok\r\n",
                            }
                        };
                        if write.write_all(reply).await.is_err() {
                            break;
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        server
    }

    fn pool(port: u16, max_open: usize) -> SmtpPool {
        SmtpPool::new(
            SmtpTarget {
                host: "127.0.0.1".into(),
                port,
                tls: StartTls::Never,
                credentials: None,
                connect_timeout: Duration::from_secs(5),
            },
            max_open,
        )
    }

    fn envelope() -> Envelope {
        Envelope::new(
            Some("from@example.com".parse().unwrap()),
            vec!["to@example.com".parse().unwrap()],
        )
        .unwrap()
    }

    const MESSAGE: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";

    #[tokio::test]
    async fn a_mail_whose_reply_was_lost_is_not_sent_again() {
        // The first mail is accepted; the connection is reused for the second, and the server
        // takes it in full and hangs up before answering.
        let server = fake_server(|n| {
            if n == 1 {
                AfterData::Accept(Duration::ZERO)
            } else {
                AfterData::Hangup
            }
        })
        .await;
        let pool = pool(server.port, 4);
        pool.send(&envelope(), MESSAGE).await.unwrap();
        let lost = pool.send(&envelope(), MESSAGE).await;
        assert!(lost.is_err(), "{lost:?}");
        assert!(
            !lost.unwrap_err().is_permanent(),
            "the worker retries it later"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            server.messages.load(Ordering::SeqCst),
            2,
            "the pool sent the second mail again on a new connection"
        );
        assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced_before_anything_is_sent() {
        let server = fake_server(|_| AfterData::Accept(Duration::ZERO)).await;
        let pool = pool(server.port, 4);
        pool.send(&envelope(), MESSAGE).await.unwrap();
        // The server side goes away while the connection waits in the pool.
        {
            let mut idle = pool.idle.lock().unwrap();
            let (conn, _) = idle.pop().unwrap();
            drop(conn);
        }
        let stale = {
            // A connection whose server already closed: a fresh one to a listener that
            // accepted and hung up.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                socket.write_all(b"220 x\r\n").await.unwrap();
                let mut buf = [0u8; 512];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                socket.write_all(b"250 x\r\n").await.unwrap();
                // Then gone.
            });
            pool_of(port).connect().await.unwrap()
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        pool.idle.lock().unwrap().push((stale, Instant::now()));
        pool.send(&envelope(), MESSAGE).await.unwrap();
        assert_eq!(server.messages.load(Ordering::SeqCst), 2);
    }

    fn pool_of(port: u16) -> SmtpPool {
        pool(port, 1)
    }

    #[tokio::test]
    async fn open_connections_are_bounded() {
        let server = fake_server(|_| AfterData::Accept(Duration::from_millis(50))).await;
        let pool = pool(server.port, 3);
        let sends: Vec<_> = (0..30)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.send(&envelope(), MESSAGE).await })
            })
            .collect();
        for send in sends {
            send.await.unwrap().unwrap();
        }
        assert_eq!(server.messages.load(Ordering::SeqCst), 30);
        assert!(
            server.most_open.load(Ordering::SeqCst) <= 3,
            "{} connections were open at once",
            server.most_open.load(Ordering::SeqCst)
        );
        assert!(server.connections.load(Ordering::SeqCst) <= 3);
    }
}

//! A real SMTP server on a loopback TCP port, for integration tests.
//!
//! The application under test talks to it with its ordinary SMTP client
//! (lettre, plain TCP, no AUTH), so the whole path — connection pool, EHLO,
//! MAIL/RCPT/DATA, RSET/NOOP between pooled messages, QUIT — is exercised for
//! real instead of being replaced by a mock transport.
//!
//! The protocol work is done by [`mailin_embedded`]: it owns the accept loop,
//! a thread pool with one thread per open session, and the SMTP state
//! machine. This module only supplies a [`Handler`] that records what was
//! delivered and can refuse chosen recipients, so tests can drive both the
//! success path and the retry/bounce paths.
//!
//! Behaviour worth knowing when writing tests:
//!
//! * [`TestSmtp::start`] advertises neither STARTTLS nor AUTH, so a client
//!   connects in plain mode, e.g. with [`TestSmtp::url`]
//!   (`smtp://127.0.0.1:PORT`). [`TestSmtp::start_tls`] offers STARTTLS with
//!   the certificate in `tests/fixtures/tls` (for `localhost`, signed by the
//!   test CA `ca.pem`) and AUTH PLAIN/LOGIN, which mailin accepts only after
//!   STARTTLS; [`TestSmtp::start_implicit_tls`] puts TLS in front of the
//!   whole session, as on port 465.
//! * A message is recorded only once DATA has been terminated by `.` and at
//!   least one recipient was accepted (mailin answers `503` to DATA when no
//!   RCPT succeeded). Only accepted recipients are listed in
//!   [`ReceivedMail::to`].
//! * mailin rejects the null reverse path `MAIL FROM:<>` with `500`, and
//!   8BITMIME is the only extension advertised (no SMTPUTF8), so envelopes
//!   need an ASCII sender address.
//! * mailin-embedded has no shutdown hook: the server thread lives until the
//!   test process exits. Each [`TestSmtp::start`] uses its own port, so tests
//!   never see each other's mail.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use mailin_embedded::{AuthMechanism, Handler, Response, Server, SslConfig, response};

/// Size of mailin-embedded's session thread pool, i.e. the number of SMTP
/// connections served at the same time. A further connection is accepted by
/// the kernel but gets no greeting until a session ends, and the worker's pool
/// keeps its connections open while idle: a worker sending a burst of mails at
/// once opens up to `SMTP_MAX_CONNECTIONS` (64 in the tests), so the server
/// serves twice that, room for a second pool or a few ad-hoc clients. With 32,
/// a burst of 40 sends left 8 connections ungreeted until the SMTP timeout.
const MAX_SESSIONS: u32 = 128;

/// How often [`TestSmtp::wait_until`] looks at the received mail.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// One message accepted by the server.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    /// Envelope sender (`MAIL FROM`), without angle brackets.
    pub from: String,
    /// Envelope recipients that were accepted at `RCPT TO`, in command order.
    pub to: Vec<String>,
    /// The raw message (headers and body) as sent after `DATA`, with the
    /// SMTP dot-stuffing removed and without the terminating `.` line.
    pub data: String,
}

/// How [`TestSmtp::fail_rcpt`] refuses a recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `451` at `RCPT TO`: the client should treat it as retryable.
    Transient,
    /// `550` at `RCPT TO`: the client should treat it as a hard bounce.
    Permanent,
}

impl Fault {
    fn response(self) -> Response {
        match self {
            Fault::Transient => Response::custom(
                451,
                "4.3.0 Temporary failure injected by TestSmtp".to_owned(),
            ),
            Fault::Permanent => Response::custom(
                550,
                "5.1.1 Mailbox unavailable (failure injected by TestSmtp)".to_owned(),
            ),
        }
    }
}

/// Handle to a running test SMTP server.
///
/// Cloning is cheap and every clone sees the same server and the same
/// recorded state, so a clone can be moved into spawned tasks.
#[derive(Clone, Debug)]
pub struct TestSmtp {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

/// State shared between the test and every SMTP session.
#[derive(Debug, Default)]
struct Shared {
    received: Vec<ReceivedMail>,
    /// Pending injected failures, keyed by lower-cased address.
    faults: HashMap<String, PlannedFault>,
    /// `RCPT TO` commands seen, keyed by lower-cased address.
    rcpt_attempts: HashMap<String, usize>,
    /// When each `RCPT TO` came, keyed by lower-cased address.
    rcpt_times: HashMap<String, Vec<std::time::Instant>>,
    /// How long the server thinks before accepting a message's data.
    accept_delay: Duration,
    /// The user and password AUTH accepts; `None`: AUTH is not offered.
    credentials: Option<(String, String)>,
    /// Users that authenticated, in order.
    logins: Vec<String>,
}

#[derive(Debug)]
struct PlannedFault {
    fault: Fault,
    /// Refusals still to give; `usize::MAX` means "forever".
    remaining: usize,
}

/// Locks the shared state, ignoring poisoning: a panic in some other test
/// thread must not hide the mail that was recorded.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Addresses are compared case-insensitively, which is what tests expect even
/// though RFC 5321 allows case-sensitive local parts.
fn key(address: &str) -> String {
    address.to_lowercase()
}

impl TestSmtp {
    /// Binds 127.0.0.1:0 and serves on a background std thread; returns at once.
    ///
    /// The socket is already listening when this returns, so a client may
    /// connect immediately. Panics if the port cannot be bound or the thread
    /// cannot be spawned; use [`TestSmtp::try_start`] to handle that instead.
    pub fn start() -> TestSmtp {
        match Self::try_start() {
            Ok(server) => server,
            Err(err) => panic!("TestSmtp: cannot start the SMTP server: {err}"),
        }
    }

    /// Like [`TestSmtp::start`], but reports start-up failures.
    pub fn try_start() -> io::Result<TestSmtp> {
        // Binding ourselves (instead of `Server::with_addr`) is what lets us
        // learn the ephemeral port before `serve` takes over the listener.
        Self::serve(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?)
    }

    /// Makes the server wait this long before accepting each message's data.
    pub fn set_accept_delay(&self, delay: Duration) {
        lock(&self.shared).accept_delay = delay;
    }

    /// Starts on a given address: a test can point the app at a port where no server runs
    /// yet (connections refused), then bring the server up there.
    pub fn start_at(addr: SocketAddr) -> TestSmtp {
        match TcpListener::bind(addr).and_then(Self::serve) {
            Ok(server) => server,
            Err(err) => panic!("TestSmtp: cannot start the SMTP server on {addr}: {err}"),
        }
    }

    /// STARTTLS (certificate for `localhost`, from the test CA [`TestSmtp::ca_file`]) and
    /// AUTH with `user` and `password`. Connect by the name `localhost`, which the
    /// certificate carries.
    pub fn start_tls(user: &str, password: &str) -> TestSmtp {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let tls = SslConfig::SelfSigned {
            cert_path: fixture("server.pem"),
            key_path: fixture("server.key"),
        };
        Self::serve_with(listener, tls, Some((user.to_owned(), password.to_owned())))
            .expect("start the TLS SMTP server")
    }

    /// TLS from the first byte (`smtps://`, port 465 style): a TLS front on its own port
    /// that hands the decrypted session to a plain server. Returns the server (its
    /// records) and the front's address. Needs a running Tokio runtime.
    pub async fn start_implicit_tls() -> (TestSmtp, SocketAddr) {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let inner = TestSmtp::start();
        install_crypto_provider();
        let certs = CertificateDer::pem_file_iter(fixture("server.pem"))
            .expect("server.pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(fixture("server.key")).expect("server.key");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("TLS server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let front = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let front_addr = front.local_addr().expect("address");
        let backend = inner.addr();
        tokio::spawn(async move {
            while let Ok((socket, _)) = front.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    }
                });
            }
        });
        (inner, front_addr)
    }

    /// The PEM file of the CA that signed the test servers' certificate.
    pub fn ca_file() -> std::path::PathBuf {
        fixture("ca.pem").into()
    }

    /// Users that authenticated, in order.
    pub fn logins(&self) -> Vec<String> {
        lock(&self.shared).logins.clone()
    }

    fn serve(listener: TcpListener) -> io::Result<TestSmtp> {
        // No TLS config means STARTTLS is not advertised, so lettre (even with
        // opportunistic TLS) stays on plain TCP.
        Self::serve_with(listener, SslConfig::None, None)
    }

    fn serve_with(
        listener: TcpListener,
        tls: SslConfig,
        credentials: Option<(String, String)>,
    ) -> io::Result<TestSmtp> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared {
            credentials: credentials.clone(),
            ..Shared::default()
        }));
        if !matches!(tls, SslConfig::None) {
            install_crypto_provider();
        }

        // mailin-embedded clones this handler for every connection, so the
        // per-session fields start empty and only `shared` is common.
        let handler = SessionHandler {
            shared: Arc::clone(&shared),
            transaction: None,
        };
        let mut server = Server::new(handler);
        server
            .with_name("localhost")
            .with_num_threads(MAX_SESSIONS)
            .with_ssl(tls)
            .map_err(|err| io::Error::other(err.to_string()))?
            .with_tcp_listener(listener);
        if credentials.is_some() {
            server
                .with_auth(AuthMechanism::Plain)
                .with_auth(AuthMechanism::Login);
        }

        thread::Builder::new()
            .name(format!("test-smtp-{}", addr.port()))
            .spawn(move || {
                // `serve` only returns on a start-up error; nothing can
                // receive it from here, so make it visible in the test log.
                if let Err(err) = server.serve() {
                    eprintln!("TestSmtp on {addr} stopped: {err}");
                }
            })?;

        Ok(TestSmtp { addr, shared })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connection URL for a plain (no TLS) SMTP client: `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every accepted message, in the order their DATA completed.
    pub fn received(&self) -> Vec<ReceivedMail> {
        lock(&self.shared).received.clone()
    }

    /// Messages whose envelope recipients include `rcpt` (case-insensitive).
    pub fn received_by(&self, rcpt: &str) -> Vec<ReceivedMail> {
        let wanted = key(rcpt);
        lock(&self.shared)
            .received
            .iter()
            .filter(|mail| mail.to.iter().any(|to| key(to) == wanted))
            .cloned()
            .collect()
    }

    /// Refuse RCPT TO for this address (case-insensitive) with the fault,
    /// `times` times, then accept. Use `usize::MAX` for always.
    ///
    /// A later call for the same address replaces the earlier plan; `times ==
    /// 0` removes it.
    pub fn fail_rcpt(&self, rcpt: &str, fault: Fault, times: usize) {
        let mut shared = lock(&self.shared);
        if times == 0 {
            shared.faults.remove(&key(rcpt));
        } else {
            shared.faults.insert(
                key(rcpt),
                PlannedFault {
                    fault,
                    remaining: times,
                },
            );
        }
    }

    /// How many RCPT TO commands were seen for this address (accepted or
    /// refused).
    ///
    /// Only commands that reached the recipient stage count; one sent before
    /// a successful MAIL FROM is answered `503` by mailin and never seen here.
    pub fn rcpt_attempts(&self, rcpt: &str) -> usize {
        lock(&self.shared)
            .rcpt_attempts
            .get(&key(rcpt))
            .copied()
            .unwrap_or(0)
    }

    /// When each `RCPT TO` for this address came (case-insensitive), in order.
    pub fn rcpt_times(&self, rcpt: &str) -> Vec<std::time::Instant> {
        lock(&self.shared)
            .rcpt_times
            .get(&key(rcpt))
            .cloned()
            .unwrap_or_default()
    }

    /// Waits (polling every 20 ms) until `pred(&self.received())` is true or
    /// the timeout passes; returns whether it became true.
    ///
    /// Delivery usually happens on a background worker, so tests need to
    /// wait for it rather than assert right after triggering it. The
    /// predicate is always checked once more at the deadline.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&[ReceivedMail]) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.received()) {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }
}

/// The per-connection [`Handler`] given to mailin-embedded.
///
/// mailin drives the SMTP state machine (including RSET, NOOP and the
/// `503` answers to out-of-order commands) and only calls us for decisions
/// and data, so this just records.
#[derive(Clone)]
struct SessionHandler {
    shared: Arc<Mutex<Shared>>,
    /// The transaction whose DATA is being received on this connection.
    transaction: Option<Transaction>,
}

#[derive(Clone)]
struct Transaction {
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl SessionHandler {
    fn login(&self, user: &str, password: &str) -> Response {
        let mut shared = lock(&self.shared);
        let accepted = shared
            .credentials
            .as_ref()
            .is_some_and(|(u, p)| u == user && p == password);
        if accepted {
            shared.logins.push(user.to_owned());
            response::AUTH_OK
        } else {
            response::INVALID_CREDENTIALS
        }
    }
}

/// The test binary links two rustls crypto providers (lettre's ring, mailin's aws-lc-rs), so
/// servers built without naming one need a process default.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn fixture(name: &str) -> String {
    format!("{}/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

impl Handler for SessionHandler {
    fn auth_plain(
        &mut self,
        _authorization_id: &str,
        authentication_id: &str,
        password: &str,
    ) -> Response {
        self.login(authentication_id, password)
    }

    fn auth_login(&mut self, username: &str, password: &str) -> Response {
        self.login(username, password)
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let address = key(to);
        let mut shared = lock(&self.shared);
        *shared.rcpt_attempts.entry(address.clone()).or_insert(0) += 1;
        shared
            .rcpt_times
            .entry(address.clone())
            .or_default()
            .push(std::time::Instant::now());

        let Some(planned) = shared.faults.get_mut(&address) else {
            return response::OK;
        };
        let fault = planned.fault;
        if planned.remaining != usize::MAX {
            planned.remaining -= 1;
        }
        if planned.remaining == 0 {
            shared.faults.remove(&address);
        }
        fault.response()
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        // mailin only gets here after at least one RCPT was accepted, and
        // `to` holds exactly the accepted recipients. Starting afresh also
        // discards anything left from a transaction whose DATA never ended.
        self.transaction = Some(Transaction {
            from: from.to_owned(),
            to: to.to_vec(),
            data: Vec::new(),
        });
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> io::Result<()> {
        // Called once per line, CRLF included and leading dot already
        // unstuffed, so concatenating gives back the original message.
        if let Some(transaction) = &mut self.transaction {
            transaction.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let delay = lock(&self.shared).accept_delay;
        if !delay.is_zero() {
            // A slow server keeps many sends in flight at once, as a busy relay does.
            thread::sleep(delay);
        }
        if let Some(transaction) = self.transaction.take() {
            lock(&self.shared).received.push(ReceivedMail {
                from: transaction.from,
                to: transaction.to,
                data: String::from_utf8_lossy(&transaction.data).into_owned(),
            });
        }
        response::OK
    }
}

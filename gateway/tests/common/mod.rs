//! A real gateway for tests: the `gatehouse` binary on a free port, with a real HTTP
//! upstream that records what reaches it, keys made with openssl, and a copy of the
//! repository's policy bundle that a test may change.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_audit::{AuditQuery, AuditStore, StoredRecord, VerifyReport};
use gatehouse_core::TenantId;
use gatehouse_core::forwarded::ContextVerifier;
use gatehouse_pgcluster::PgCluster;
use serde_json::{Value, json};

pub const ISSUER: &str = "https://id.test";
pub const AUDIENCE: &str = "gatehouse-test";
pub const HS256_SECRET: &str = "test-only-hs256-secret-of-at-least-32-bytes";
pub const API_KEY: &str = "acme-service-key-1";

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub request_line: String,
    pub headers: Vec<(String, String)>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The recording upstream's response header that echoes the forwarded context.
pub const ECHOED_CONTEXT: &str = "x-echoed-context";

/// A plain HTTP/1.1 server that answers 200 and records every request head.
pub struct Upstream {
    pub port: u16,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Upstream {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || serve(stream, &log));
            }
        });
        Self { port, received }
    }

    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().unwrap())
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        log.lock().unwrap().push(Received {
            request_line: request_line.trim_end().to_string(),
            headers,
        });
        // The context the gateway forwarded, echoed: its decision id tells the client which
        // audit record stands for the answer.
        let context = log.lock().unwrap().last().and_then(|r| {
            r.header(gatehouse_core::forwarded::CONTEXT_HEADER)
                .map(str::to_string)
        });
        let echo = context.map_or_else(String::new, |c| format!("{ECHOED_CONTEXT}: {c}\r\n"));
        let body = r#"{"upstream":"ok"}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{echo}content-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// The identity provider's keys, made with openssl, as PEM files and a JWKS.
pub struct IdpKeys {
    pub rsa_pem: Vec<u8>,
    pub rsa_public_pem: Vec<u8>,
    pub ec_pem: Vec<u8>,
    pub ed_pem: Vec<u8>,
    pub jwks: Value,
}

fn openssl(args: &[&str], dir: &Path) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl IdpKeys {
    fn generate(dir: &Path) -> Self {
        let genpkey = |name: &str, args: &[&str]| {
            let mut all = vec!["genpkey", "-out", name];
            all.extend_from_slice(args);
            openssl(&all, dir);
            std::fs::read(dir.join(name)).unwrap()
        };
        let rsa_pem = genpkey(
            "rsa.pem",
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        );
        let ec_pem = genpkey(
            "ec.pem",
            &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        );
        let ed_pem = genpkey("ed.pem", &["-algorithm", "ed25519"]);
        let rsa_public_pem = openssl(&["pkey", "-in", "rsa.pem", "-pubout"], dir);
        let modulus = String::from_utf8(openssl(
            &["rsa", "-in", "rsa.pem", "-noout", "-modulus"],
            dir,
        ))
        .unwrap();
        let modulus = hex_bytes(modulus.trim().trim_start_matches("Modulus="));
        let ec_der = openssl(
            &["pkey", "-in", "ec.pem", "-pubout", "-outform", "DER"],
            dir,
        );
        let point = &ec_der[ec_der.len() - 64..];
        let ed_der = openssl(
            &["pkey", "-in", "ed.pem", "-pubout", "-outform", "DER"],
            dir,
        );
        let b64 = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
        let jwks = json!({ "keys": [
            { "kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": b64(&modulus), "e": "AQAB" },
            { "kty": "EC", "kid": "ec-1", "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64(&point[..32]), "y": b64(&point[32..]) },
            { "kty": "OKP", "kid": "ed-1", "alg": "EdDSA", "use": "sig", "crv": "Ed25519", "x": b64(&ed_der[ed_der.len() - 32..]) },
        ]});
        Self {
            rsa_pem,
            rsa_public_pem,
            ec_pem,
            ed_pem,
            jwks,
        }
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `user` in `tenant`, valid for ten minutes.
pub fn claims(user: &str, tenant: &str) -> Value {
    json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": user, "tenant": tenant, "iat": now(), "exp": now() + 600 })
}

/// A running gateway and its upstream.
pub struct Gateway {
    child: Child,
    /// Where `/metrics` is served.
    pub metrics: String,
    /// The PostgreSQL the gateway audits to (started by the test, so tests can stop it).
    pub postgres: Option<PgCluster>,
    pub app_url: String,
    pub base: String,
    /// The in-process documents adapter, reached directly (not through the gateway).
    pub documents: Option<String>,
    /// The gateway's context signing key (PEM), to forge what only the gateway may sign.
    pub context_pem: String,
    pub upstream: Upstream,
    pub dir: tempfile::TempDir,
    pub keys: IdpKeys,
    pub verifier: ContextVerifier,
    pub client: reqwest::blocking::Client,
    pub stderr_path: PathBuf,
}

impl Gateway {
    /// Sends SIGTERM and waits (at most 20 s) for the process to exit; its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.terminate_within(Duration::from_secs(20))
    }

    fn terminate_within(&mut self, patience: Duration) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Kills the process with SIGKILL (no shutdown at all) and starts it again with the
    /// same configuration and files; returns once it is healthy.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// Kills the process with SIGKILL.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the (stopped) process again with the same configuration and files; returns
    /// once it is healthy.
    pub fn restart(&mut self) {
        self.child = spawn(&self.config_path(), &self.stderr_path);
        self.wait_ready();
    }

    /// The configuration file the gateway was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gatehouse.toml")
    }
}

impl Drop for Gateway {
    /// SIGTERM first, so the gateway shuts down gracefully (and stops a private cluster it
    /// started); SIGKILL if it is still there after ten seconds.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none()
            && self.terminate_within(Duration::from_secs(10)).is_none()
        {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A query for every record of `tenant`.
fn all_of(tenant: &str) -> AuditQuery {
    let mut query = AuditQuery::tenant(TenantId::parse(tenant).unwrap());
    query.limit = i64::MAX;
    query
}

/// Starts the gateway binary on `config`, its log appended to `log`.
fn spawn(config: &Path, log: &Path) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--config")
        .arg(config)
        .env("TEST_HS256_SECRET", HS256_SECRET)
        .stdout(log)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if !entry.path().is_file() {
            continue;
        }
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Where the gateway's database comes from.
#[derive(Clone, Copy)]
pub enum DatabaseMode {
    /// The test starts a cluster and gives the gateway its URLs.
    External,
    /// The gateway starts its own private cluster on this port.
    Embedded(u16),
}

impl Gateway {
    pub fn start() -> Self {
        Self::start_with(DatabaseMode::External)
    }

    pub fn start_with(mode: DatabaseMode) -> Self {
        Self::start_configured(mode, false)
    }

    /// A gateway whose document and folder routes go to the in-process documents adapter
    /// (the adapter's own route table), the rest to the recording upstream.
    pub fn start_with_documents() -> Self {
        Self::start_configured(DatabaseMode::External, true)
    }

    fn start_configured(mode: DatabaseMode, documents: bool) -> Self {
        let dir = gatehouse_pgcluster::scratch_dir().unwrap();
        let (postgres, database, app_url) = match mode {
            DatabaseMode::External => {
                let cluster = PgCluster::start(&dir.path().join("pg"), None).unwrap();
                let urls = cluster.provision("gatehouse").unwrap();
                let section = format!(
                    "url = \"{}\"\nowner_url = \"{}\"",
                    urls.app_url, urls.owner_url
                );
                (Some(cluster), section, urls.app_url)
            }
            DatabaseMode::Embedded(port) => {
                let section = format!(
                    "data_dir = \"{}/embedded-pg\"\nport = {port}",
                    dir.path().display()
                );
                (None, section, String::new())
            }
        };
        copy_dir(&repo().join("policies"), &dir.path().join("policies"));
        copy_dir(&repo().join("schemas"), &dir.path().join("schemas"));
        let keys = IdpKeys::generate(dir.path());
        std::fs::write(dir.path().join("jwks.json"), keys.jwks.to_string()).unwrap();
        openssl(
            &["genpkey", "-algorithm", "ed25519", "-out", "context.pem"],
            dir.path(),
        );
        let context_pem = std::fs::read_to_string(dir.path().join("context.pem")).unwrap();
        let public = openssl(&["pkey", "-in", "context.pem", "-pubout"], dir.path());
        let verifier =
            ContextVerifier::from_public_pem(std::str::from_utf8(&public).unwrap()).unwrap();
        assert!(context_pem.contains("PRIVATE KEY"));

        let upstream = Upstream::start();
        let documents_port = free_ports();
        let port = free_port();
        let metrics_port = free_port();
        let api_key_hash = {
            use sha2::Digest;
            format!("{:x}", sha2::Sha256::digest(API_KEY.as_bytes()))
        };
        let config = format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
threads = 2
grace_period_seconds = 0
metrics_listen = "127.0.0.1:{metrics_port}"

[policy]
bundle = "{dir}/policies"
reload_interval_seconds = 1

[entities]
source = "postgres"
file = "{fixture}"

[tenancy]
base_domain = "gatehouse.test"

[identity]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
jwks_file = "{dir}/jwks.json"
allow_hs256 = true
hs256_secret = "env:TEST_HS256_SECRET"
leeway_seconds = 0

[forwarding]
signing_key = "file:{dir}/context.pem"

[database]
{database}

[limits]
requests_per_second = {{ free = 5, pro = 10000 }}

[audit]
spool = "{dir}/audit.spool"
flush_interval_ms = 20

[[upstream]]
name = "app"
address = "127.0.0.1:{upstream}"

[[api_key]]
tenant = "acme"
principal = 'User::"acme-ed"'
sha256 = "{api_key_hash}"

{document_routes}
"#,
            dir = dir.path().display(),
            fixture = repo()
                .join("policy-tests/fixtures/three-tenants.json")
                .display(),
            upstream = upstream.port,
            document_routes = if documents {
                adapter_routes(documents_port, dir.path())
            } else {
                format!("{APP_DOCUMENT_ROUTES}{APP_SEARCH_ROUTE}")
            },
        );
        let config_path = dir.path().join("gatehouse.toml");
        std::fs::write(&config_path, config).unwrap();
        let stderr_path = dir.path().join("gatehouse.log");
        let child = spawn(&config_path, &stderr_path);
        let dir_path = dir.path().to_path_buf();
        let mut gateway = Self {
            child,
            metrics: format!("http://127.0.0.1:{metrics_port}/metrics"),
            postgres,
            app_url,
            base: format!("http://127.0.0.1:{port}"),
            documents: documents.then(|| format!("http://127.0.0.1:{documents_port}")),
            context_pem,
            upstream,
            dir,
            keys,
            verifier,
            // A fresh connection per request: once in a loaded CI run a request on a pooled
            // keep-alive connection met a closed connection (hyper IncompleteMessage); the
            // tests are about decisions, and keep-alive is exercised by bench/gateway/run.sh.
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            stderr_path,
        };
        gateway.wait_ready();
        if let DatabaseMode::Embedded(_) = mode {
            // The gateway's own cluster has passwords of its own: its URL file names them.
            let url_file = dir_path.join("embedded-pg.url");
            gateway.app_url = std::fs::read_to_string(url_file).unwrap();
        }
        if documents {
            // The adapters are background services: they may listen a moment after the proxy.
            for port in [documents_port, documents_port + 1, documents_port + 3] {
                wait_listening(port);
            }
        }
        gateway
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self.client.get(format!("{}/healthz", self.base)).send()
                && r.status() == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "the gateway did not become healthy; log:\n{}",
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        );
    }

    /// An HS256 token with these claims.
    pub fn hs256(&self, claims: &Value) -> String {
        let key = jsonwebtoken::EncodingKey::from_secret(HS256_SECRET.as_bytes());
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &key,
        )
        .unwrap()
    }

    /// A token signed by one of the IdP's keys (`rsa-1`, `ec-1`, `ed-1`).
    pub fn signed(&self, kid: &str, claims: &Value) -> String {
        use jsonwebtoken::{Algorithm, EncodingKey, Header};
        let (alg, key) = match kid {
            "rsa-1" => (
                Algorithm::RS256,
                EncodingKey::from_rsa_pem(&self.keys.rsa_pem).unwrap(),
            ),
            "ec-1" => (
                Algorithm::ES256,
                EncodingKey::from_ec_pem(&self.keys.ec_pem).unwrap(),
            ),
            "ed-1" => (
                Algorithm::EdDSA,
                EncodingKey::from_ed_pem(&self.keys.ed_pem).unwrap(),
            ),
            other => panic!("no key {other}"),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    /// A token for `user` in `tenant`.
    pub fn token(&self, user: &str, tenant: &str) -> String {
        self.hs256(&claims(user, tenant))
    }

    /// Sends `method` `path` with a JSON `body`; the status and the JSON answer.
    pub fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    }

    /// Sends `method` `path` with a JSON `body` and these headers (no token).
    pub fn call_json(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .json(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    }

    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, token, &[])
    }

    pub fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let body = response.json::<Value>().unwrap_or(Value::Null);
        (status, body)
    }

    /// The tenant's audit records, oldest first.
    /// The serving bundle (name, version, hash), as the metrics listener tells it (a
    /// background service: it may start listening a moment after the proxy).
    pub fn serving_bundle(&self) -> Value {
        let readyz = self.metrics.replace("/metrics", "/readyz");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.client.get(&readyz).send() {
                Ok(response) => return response.json::<Value>().unwrap()["bundle"].clone(),
                Err(e) if Instant::now() > deadline => panic!("{readyz}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Every audit record of the tenant (not only the query's default latest 1,000).
    pub fn audit(&self, tenant: &str) -> Vec<StoredRecord> {
        self.with_store(|store| async move { store.query(&all_of(tenant)).await.unwrap() })
    }

    /// Waits until the tenant has `n` audit records (at most 20 s), and returns them.
    pub fn audit_when(&self, tenant: &str, n: usize) -> Vec<StoredRecord> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let records = self.with_store(|store| async move {
                store.query(&all_of(tenant)).await.unwrap_or_default()
            });
            if records.len() >= n || Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The tenant's audit records once `done` holds for them (waiting at most 20 s; the
    /// records as they are then, for the caller's assertions to explain).
    pub fn audit_until(
        &self,
        tenant: &str,
        done: impl Fn(&[StoredRecord]) -> bool,
    ) -> Vec<StoredRecord> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let records = self.audit(tenant);
            if done(&records) || Instant::now() > deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether every one of `ids` is in the tenant's audit log (waiting at most 20 s).
    pub fn audited(&self, tenant: &str, ids: &[&str]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let records = self.audit(tenant);
            let found = |id: &&str| records.iter().any(|r| r.record.id == *id);
            if ids.iter().all(found) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Checks the tenant's hash chain.
    pub fn verify(&self, tenant: &str) -> VerifyReport {
        self.with_store(|store| async move {
            store
                .verify(&TenantId::parse(tenant).unwrap())
                .await
                .unwrap()
        })
    }

    pub fn with_store<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce(AuditStore) -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(5))
                .connect(&self.app_url)
                .await
                .unwrap();
            f(AuditStore::new(pool)).await
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

/// The document routes of the plain gateway tests: to the recording upstream.
const APP_SEARCH_ROUTE: &str = r#"
[[route]]
method = "GET"
path = "/search"
action = "search:query"
resource = "Tenant"
upstream = "app"
"#;

const APP_DOCUMENT_ROUTES: &str = r#"
[[route]]
method = "GET"
path = "/documents/{id}"
action = "document:read"
resource = "Document"
upstream = "app"

[[route]]
method = "DELETE"
path = "/documents/{id}"
action = "document:delete"
resource = "Document"
upstream = "app"
"#;

/// The documents and blob adapters in process on `port` and `port + 1` (with a local S3
/// store on `port + 2`, in `dir`), and their routes. Uploads: 2,000 bytes on the free
/// plan, 50 MB on pro.
fn adapter_routes(port: u16, dir: &Path) -> String {
    let (blobs, s3, search) = (port + 1, port + 2, port + 3);
    let dir = dir.display();
    let mut out = format!(
        r#"
[adapters.documents]
listen = "127.0.0.1:{port}"

[adapters.blobs]
listen = "127.0.0.1:{blobs}"
local_dir = "{dir}/s3"
local_listen = "127.0.0.1:{s3}"
master_key_file = "{dir}/master.key"
max_upload_bytes = {{ free = 2000, pro = 50000000 }}

[adapters.search]
listen = "127.0.0.1:{search}"
data_dir = "{dir}/search"
sweep_interval_seconds = 1

[[upstream]]
name = "search"
address = "127.0.0.1:{search}"

[[upstream]]
name = "documents"
address = "127.0.0.1:{port}"

[[upstream]]
name = "blobs"
address = "127.0.0.1:{blobs}"
"#
    );
    let adapters = [
        ("documents", gatehouse_adapter_pg::api::ROUTES),
        ("blobs", gatehouse_adapter_blobs::api::ROUTES),
        ("search", gatehouse_adapter_search::api::ROUTES),
    ];
    for (upstream, routes) in adapters {
        for (method, path, action, resource) in routes {
            out.push_str(&format!(
                "\n[[route]]\nmethod = \"{method}\"\npath = \"{path}\"\naction = \"{action}\"\nresource = \"{resource}\"\nupstream = \"{upstream}\"\n"
            ));
        }
    }
    out
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Four consecutive free ports (for the adapters and the local S3 store).
fn free_ports() -> u16 {
    loop {
        let first = free_port();
        let free = (1..4).all(|i| TcpListener::bind(("127.0.0.1", first + i)).is_ok());
        if first < u16::MAX - 4 && free {
            return first;
        }
    }
}

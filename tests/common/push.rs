//! Local servers that behave like FCM HTTP v1 (with Google's OAuth2 token endpoint) and
//! APNs, checking what the providers check: the OAuth2 JWT assertion (RS256, issuer,
//! audience, scope) and the bearer token it was exchanged for; APNs over HTTP/2 only,
//! its ES256 provider token (`kid`, `iss`), `apns-topic`, `apns-push-type`,
//! `apns-priority`, `apns-collapse-id`, device tokens of 64 hexadecimal digits, a
//! provider token at most an hour old (`ExpiredProviderToken`); the payload shapes.
//! Tokens starting `dead` are unregistered; FCM tokens starting `busy` are rate limited
//! on their first send; APNs tokens starting `429` or `503` are answered so on their
//! first send, and those starting `bad` are unknown to APNs (`BadDeviceToken`).

use std::{
    collections::HashSet,
    path::PathBuf,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, Version},
    response::{IntoResponse, Response},
    routing::post,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

pub const PROJECT: &str = "wp-test";
pub const CLIENT_EMAIL: &str = "push@wp-test.iam.gserviceaccount.com";
pub const TEAM: &str = "TEAM123456";
pub const KEY_ID: &str = "KEY7654321";
pub const TOPIC: &str = "com.example.watchparty";

/// A push the fake provider accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub provider: &'static str,
    pub token: String,
    pub title: String,
    pub body: String,
    pub collapse: String,
}

#[derive(Default)]
struct Shared {
    fcm_public: Vec<u8>,
    apns_public: Vec<u8>,
    token_uri: String,
    issued: Mutex<HashSet<String>>,
    token_requests: Mutex<usize>,
    busy_seen: Mutex<HashSet<String>>,
    accepted: Mutex<Vec<Accepted>>,
    refused: Mutex<Vec<String>>,
    /// The protocol each TLS connection agreed on by ALPN (None: none offered).
    alpn: Mutex<Vec<Option<Vec<u8>>>>,
}

pub struct Providers {
    pub base: String,
    pub dir: PathBuf,
    /// Serving over TLS, with the root certificate the workers must trust.
    tls: bool,
    shared: Arc<Shared>,
    _handle: tokio::task::JoinHandle<()>,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl Providers {
    /// Both providers over plain HTTP (HTTP/1.1 and HTTP/2 with prior knowledge).
    pub async fn start() -> Self {
        Self::start_on(false).await
    }

    /// Both providers at `https://localhost:…`, as the real ones are: TLS with a
    /// certificate of a test CA (`PUSH_CA_FILE` in [`Self::vars`]), offering HTTP/2
    /// alone by ALPN.
    pub async fn start_tls() -> Self {
        Self::start_on(true).await
    }

    async fn start_on(tls: bool) -> Self {
        let dir = std::env::temp_dir().join(format!("wp-push-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let rsa = dir.join("fcm.pem");
        let ec = dir.join("apns.p8");
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            rsa.to_str().unwrap(),
        ]);
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            ec.to_str().unwrap(),
        ]);
        let fcm_public = openssl(&["pkey", "-in", rsa.to_str().unwrap(), "-pubout"]);
        let apns_public = openssl(&["pkey", "-in", ec.to_str().unwrap(), "-pubout"]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = if tls {
            format!("https://localhost:{port}")
        } else {
            format!("http://127.0.0.1:{port}")
        };
        let shared = Arc::new(Shared {
            fcm_public,
            apns_public,
            token_uri: format!("{base}/token"),
            ..Default::default()
        });
        let sa = json!({
            "type": "service_account", "project_id": PROJECT, "client_email": CLIENT_EMAIL,
            "private_key": std::fs::read_to_string(&rsa).unwrap(), "token_uri": shared.token_uri,
        });
        std::fs::write(dir.join("service-account.json"), sa.to_string()).unwrap();
        let app = Router::new()
            .route("/token", post(token))
            .route("/v1/projects/{project}/messages:send", post(fcm_send))
            .route("/3/device/{token}", post(apns_send))
            .with_state(shared.clone());
        let handle = if tls {
            let acceptor = tls_acceptor(&dir);
            let listener = TlsListener {
                tcp: listener,
                acceptor,
                shared: shared.clone(),
            };
            tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            })
        } else {
            // axum's server speaks HTTP/1.1 and HTTP/2 with prior knowledge.
            tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            })
        };
        Self {
            base,
            dir,
            tls,
            shared,
            _handle: handle,
        }
    }

    /// The worker's environment for both providers.
    pub fn vars(&self) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = vec![
            (
                "FCM_SERVICE_ACCOUNT_FILE".into(),
                self.dir.join("service-account.json").display().to_string(),
            ),
            ("FCM_BASE_URL".into(), self.base.clone()),
            (
                "APNS_KEY_FILE".into(),
                self.dir.join("apns.p8").display().to_string(),
            ),
            ("APNS_KEY_ID".into(), KEY_ID.into()),
            ("APNS_TEAM_ID".into(), TEAM.into()),
            ("APNS_TOPIC".into(), TOPIC.into()),
            ("APNS_BASE_URL".into(), self.base.clone()),
        ];
        if self.tls {
            vars.push((
                "PUSH_CA_FILE".into(),
                self.dir.join("ca.pem").display().to_string(),
            ));
        }
        vars
    }

    /// What each TLS connection agreed on by ALPN.
    pub fn alpn(&self) -> Vec<Option<Vec<u8>>> {
        self.shared.alpn.lock().unwrap().clone()
    }

    /// A test environment whose workers use these providers (plus `extra` variables).
    pub async fn env(&self, extra: &[(&str, &str)]) -> super::TestEnv {
        let vars = self.vars();
        let mut all: Vec<(&str, &str)> =
            vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        all.extend_from_slice(extra);
        super::TestEnv::with_vars(&all).await
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.shared.accepted.lock().unwrap().clone()
    }

    pub fn refused(&self) -> Vec<String> {
        self.shared.refused.lock().unwrap().clone()
    }

    /// Forgets every OAuth2 access token issued so far (as Google does when it revokes
    /// one): the next FCM send with one is answered 401.
    pub fn revoke_fcm_tokens(&self) {
        self.shared.issued.lock().unwrap().clear();
    }

    pub fn token_requests(&self) -> usize {
        *self.shared.token_requests.lock().unwrap()
    }
}

/// A test CA and a certificate for `localhost` signed by it (`ca.pem`, `server.pem`,
/// `server.key` in `dir`), and a TLS acceptor offering HTTP/2 alone.
fn tls_acceptor(dir: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    };
    let at = |f: &str| dir.join(f).display().to_string();
    // A new P-256 key, unencrypted, for each certificate.
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &new_key,
            &[
                "-keyout",
                &at("ca.key"),
                "-out",
                &at("ca.pem"),
                "-days",
                "1",
                "-subj",
                "/CN=watch-party test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign",
            ][..],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &new_key,
            &[
                "-keyout",
                &at("server.key"),
                "-out",
                &at("server.csr"),
                "-subj",
                "/CN=localhost",
            ][..],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &at("server.csr"),
        "-CA",
        &at("ca.pem"),
        "-CAkey",
        &at("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &at("server.ext"),
        "-out",
        &at("server.pem"),
    ]);
    let certs = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Accepts TCP connections and completes their TLS handshake; a failed handshake is
/// dropped (as a server would) and the next connection taken.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(tcp).await {
                let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                self.shared.alpn.lock().unwrap().push(alpn);
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn refuse(s: &Shared, status: StatusCode, why: String) -> Response {
    s.refused.lock().unwrap().push(why.clone());
    (status, Json(json!({ "error": why }))).into_response()
}

async fn token(
    State(s): State<Arc<Shared>>,
    Form(form): Form<std::collections::HashMap<String, String>>,
) -> Response {
    *s.token_requests.lock().unwrap() += 1;
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return refuse(&s, StatusCode::BAD_REQUEST, "grant_type".into());
    }
    let key = DecodingKey::from_rsa_pem(&s.fcm_public).unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[s.token_uri.as_str()]);
    v.set_issuer(&[CLIENT_EMAIL]);
    let claims = match jsonwebtoken::decode::<Value>(
        form.get("assertion").map_or("", String::as_str),
        &key,
        &v,
    ) {
        Ok(d) => d.claims,
        Err(e) => return refuse(&s, StatusCode::BAD_REQUEST, format!("assertion: {e}")),
    };
    if claims["scope"] != "https://www.googleapis.com/auth/firebase.messaging" {
        return refuse(&s, StatusCode::BAD_REQUEST, "scope".into());
    }
    let t = format!("ya29.{}", uuid::Uuid::new_v4().simple());
    s.issued.lock().unwrap().insert(t.clone());
    Json(json!({ "access_token": t, "expires_in": 3599, "token_type": "Bearer" })).into_response()
}

async fn fcm_send(
    State(s): State<Arc<Shared>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !s.issued.lock().unwrap().contains(bearer) {
        return refuse(&s, StatusCode::UNAUTHORIZED, "fcm bearer".into());
    }
    if project != PROJECT {
        return refuse(&s, StatusCode::NOT_FOUND, "project".into());
    }
    let m = &body["message"];
    let (Some(token), Some(title), Some(text)) = (
        m["token"].as_str(),
        m["notification"]["title"].as_str(),
        m["notification"]["body"].as_str(),
    ) else {
        return refuse(&s, StatusCode::BAD_REQUEST, format!("fcm payload: {body}"));
    };
    if m["data"]
        .as_object()
        .is_none_or(|d| d.values().any(|v| !v.is_string()))
    {
        return refuse(
            &s,
            StatusCode::BAD_REQUEST,
            "fcm data values must be strings".into(),
        );
    }
    if token.starts_with("dead") {
        return (StatusCode::NOT_FOUND, Json(json!({"error": {"code": 404, "status": "NOT_FOUND",
            "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})))
            .into_response();
    }
    if token.starts_with("busy") && s.busy_seen.lock().unwrap().insert(token.to_owned()) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": {"status": "RESOURCE_EXHAUSTED"}})),
        )
            .into_response();
    }
    s.accepted.lock().unwrap().push(Accepted {
        provider: "fcm",
        token: token.to_owned(),
        title: title.to_owned(),
        body: text.to_owned(),
        collapse: m["android"]["collapse_key"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    });
    Json(json!({ "name": format!("projects/{PROJECT}/messages/{}", uuid::Uuid::new_v4()) }))
        .into_response()
}

async fn apns_send(
    State(s): State<Arc<Shared>>,
    Path(token): Path<String>,
    version: Version,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if version != Version::HTTP_2 {
        return refuse(
            &s,
            StatusCode::HTTP_VERSION_NOT_SUPPORTED,
            "apns needs HTTP/2".into(),
        );
    }
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let jwt = h("authorization")
        .strip_prefix("bearer ")
        .unwrap_or_default()
        .to_owned();
    let key = DecodingKey::from_ec_pem(&s.apns_public).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.set_issuer(&[TEAM]);
    v.set_required_spec_claims(&["iss"]);
    v.validate_exp = false;
    let iat = match jsonwebtoken::decode::<Value>(&jwt, &key, &v) {
        Ok(d) if d.header.kid.as_deref() == Some(KEY_ID) => d.claims["iat"].as_i64(),
        Ok(_) => return refuse(&s, StatusCode::FORBIDDEN, "apns kid".into()),
        Err(e) => return refuse(&s, StatusCode::FORBIDDEN, format!("apns token: {e}")),
    };
    // Apple refuses a provider token issued more than an hour ago (or in the future).
    let now = chrono::Utc::now().timestamp();
    if iat.is_none_or(|iat| iat < now - 3600 || iat > now + 60) {
        s.refused.lock().unwrap().push(format!("apns iat {iat:?}"));
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"reason": "ExpiredProviderToken"})),
        )
            .into_response();
    }
    if h("apns-topic") != TOPIC || h("apns-push-type") != "alert" || h("apns-priority") != "10" {
        return refuse(&s, StatusCode::BAD_REQUEST, "apns headers".into());
    }
    let collapse = h("apns-collapse-id");
    if collapse.is_empty() || collapse.len() > 64 {
        return refuse(&s, StatusCode::BAD_REQUEST, "apns-collapse-id".into());
    }
    let alert = &body["aps"]["alert"];
    let (Some(title), Some(text)) = (alert["title"].as_str(), alert["body"].as_str()) else {
        return refuse(&s, StatusCode::BAD_REQUEST, format!("apns payload: {body}"));
    };
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"reason": "BadDeviceToken"})),
        )
            .into_response();
    }
    if token.starts_with("bad") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"reason": "BadDeviceToken"})),
        )
            .into_response();
    }
    for (prefix, status, reason) in [
        ("429", StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        ("503", StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable"),
    ] {
        if token.starts_with(prefix) && s.busy_seen.lock().unwrap().insert(token.clone()) {
            return (status, Json(json!({"reason": reason}))).into_response();
        }
    }
    if token.starts_with("dead") {
        return (
            StatusCode::GONE,
            Json(json!({"reason": "Unregistered", "timestamp": 0})),
        )
            .into_response();
    }
    s.accepted.lock().unwrap().push(Accepted {
        provider: "apns",
        token,
        title: title.to_owned(),
        body: text.to_owned(),
        collapse,
    });
    StatusCode::OK.into_response()
}

//! JWT bearer tokens beside API keys: HS256 against a shared secret, RS256 against a JWKS file, ES256 against a
//! JWKS URL served on loopback; tokens signed here, with the issuer, audience, expiry, signature and role checked,
//! and the visibility claim withholding private stakeholders. API keys configured as their SHA-256 digest. Neither
//! keys nor tokens appear in the service's log.

use crate::support::{post_graphql, serve};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use stakegraph::identity::{JwtSettings, Tokens};
use std::sync::Arc;

const ISSUER: &str = "https://login.example.com/";
const AUDIENCE: &str = "stakegraph";
const SECRET: &str = "a-shared-hs256-secret-of-at-least-32-bytes";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims for `role`, valid for an hour, from the configured issuer to the configured audience.
fn claims(role: &str) -> Value {
    json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": "user-42", "exp": now() + 3600, "role": role })
}

fn hs256(claims: &Value, secret: &str) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn settings() -> JwtSettings {
    JwtSettings {
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        visibility_claim: Some("sees_private".into()),
        ..JwtSettings::default()
    }
}

/// The service on a fresh store with `[jwt]` from `settings`, and a public and a private customer in it (created
/// with an editor token); returns its base URL and the store's guard.
async fn service(settings: JwtSettings, editor: &str) -> (String, tempfile::TempDir) {
    let tokens = Tokens::new(&settings).expect("valid [jwt]").expect("configured");
    let (address, dir) = serve(|config| config.jwt = Some(Arc::new(tokens))).await;
    let base = format!("http://{address}");
    let create = "mutation($input: CreateCustomerInput!) { createCustomer(input: $input) { id } }";
    for (key, name, private) in [("C-1", "Open Ltd", false), ("C-2", "Secret Ltd", true)] {
        let body =
            json!({ "query": create, "variables": { "input": { "key": key, "name": name, "private": private } } });
        let created = post_graphql(&reqwest::Client::new(), &base, Some(editor), &body).await;
        assert!(created.get("errors").is_none(), "{created:#}");
    }
    (base, dir)
}

const NAMES: &str = "{ stakeholders(first: 10, filter: { includeArchived: true }) { nodes { name } } }";

/// What `token` reads of the stakeholders' names, or the refusal's message.
async fn names(base: &str, token: &str) -> Result<Vec<String>, String> {
    let response = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": NAMES }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    if let Some(error) = body["errors"][0].as_object() {
        assert_eq!(status, 401, "{body:#}");
        assert_eq!(error["extensions"]["code"], "UNAUTHENTICATED");
        return Err(error["message"].as_str().unwrap().to_owned());
    }
    Ok(body["data"]["stakeholders"]["nodes"].as_array().unwrap().iter().map(|n| n["name"].to_string()).collect())
}

#[tokio::test]
async fn hs256_tokens_are_checked_for_issuer_audience_expiry_signature_and_role() {
    let editor = hs256(&claims("editor"), SECRET);
    let (base, _dir) = service(JwtSettings { hs256_secret: Some(SECRET.into()), ..settings() }, &editor).await;
    assert_eq!(names(&base, &editor).await.unwrap().len(), 2, "an editor token sees the private customer");
    assert_eq!(names(&base, &hs256(&claims("viewer"), SECRET)).await.unwrap(), ["\"Open Ltd\""], "a viewer does not");
    // The visibility claim withholds private stakeholders from an editor token; it may still write.
    let mut withheld = claims("editor");
    withheld["sees_private"] = json!(false);
    assert_eq!(names(&base, &hs256(&withheld, SECRET)).await.unwrap(), ["\"Open Ltd\""]);
    // Nor may such a token have private stakeholders sent elsewhere, even an admin's.
    let mut admin = claims("admin");
    admin["sees_private"] = json!(false);
    let register = json!({ "query": "mutation { registerWebhook(input: { url: \"https://hooks.example.com/x\", \
                                      includePrivate: true }) { secret } }" });
    let refused = post_graphql(&reqwest::Client::new(), &base, Some(&hs256(&admin, SECRET)), &register).await;
    assert_eq!(refused["errors"][0]["extensions"]["code"], "FORBIDDEN", "{refused:#}");
    assert!(refused["errors"][0]["message"].as_str().unwrap().contains("includePrivate"), "{refused:#}");

    let refused = |mutate: fn(&mut Value), secret: &'static str| {
        let base = base.clone();
        async move {
            let mut claims = claims("editor");
            mutate(&mut claims);
            names(&base, &hs256(&claims, secret)).await.expect_err("refused")
        }
    };
    let expired = refused(|claims| claims["exp"] = json!(now() - 600), SECRET).await;
    assert!(expired.contains("expired"), "{expired}");
    let audience = refused(|claims| claims["aud"] = json!("another-api"), SECRET).await;
    assert!(audience.contains("not for this API"), "{audience}");
    let issuer = refused(|claims| claims["iss"] = json!("https://evil.example.com/"), SECRET).await;
    assert!(issuer.contains("issuer"), "{issuer}");
    let wrong_key = refused(|_| {}, "another-secret-of-at-least-thirty-two-bytes").await;
    assert!(wrong_key.contains("signature"), "{wrong_key}");
    let no_role = refused(|claims| claims["role"] = json!("superuser"), SECRET).await;
    assert!(no_role.contains("`role` claim"), "{no_role}");
    let no_expiry =
        refused(|claims| claims.as_object_mut().unwrap().remove("exp").map(drop).unwrap_or(()), SECRET).await;
    assert!(no_expiry.contains("`exp`"), "{no_expiry}");
    // A token signed with another algorithm than the configured key's is refused, whatever it claims.
    let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&claims("admin").to_string()));
    assert!(names(&base, &none).await.is_err());
    // API keys still work beside tokens.
    assert!(names(&base, crate::support::EDITOR_KEY).await.is_ok());
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn rs256_tokens_verify_against_a_jwks_file() {
    let dir = format!("{}/tests/jwt", env!("CARGO_MANIFEST_DIR"));
    let key = EncodingKey::from_rsa_der(&std::fs::read(format!("{dir}/rs256-test-key.der")).unwrap());
    let sign = |claims: &Value, kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        encode(&header, claims, &key).unwrap()
    };
    let editor = sign(&claims("editor"), "rs256-test");
    let settings = JwtSettings { jwks_file: Some(format!("{dir}/rs256-test-jwks.json").into()), ..settings() };
    let (base, _dir) = service(settings, &editor).await;
    assert_eq!(names(&base, &sign(&claims("viewer"), "rs256-test")).await.unwrap(), ["\"Open Ltd\""]);
    let unknown = names(&base, &sign(&claims("viewer"), "another-key")).await.unwrap_err();
    assert!(unknown.contains("`kid`"), "{unknown}");
    // HS256 with the public key as its secret (the classic confusion) is refused: the JWKS takes RS256 and ES256.
    let confused = hs256(&claims("admin"), &std::fs::read_to_string(format!("{dir}/rs256-test-jwks.json")).unwrap());
    let refused = names(&base, &confused).await.unwrap_err();
    assert!(refused.contains("HS256"), "{refused}");
}

#[tokio::test]
async fn es256_tokens_verify_against_a_jwks_url() {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let random = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random).unwrap();
    let point = pair.public_key().as_ref();
    let coordinate = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let jwks = json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": "es256-test", "alg": "ES256", "use": "sig",
        "x": coordinate(&point[1..33]), "y": coordinate(&point[33..65]),
    }]});
    // The identity provider: a JWKS document on loopback.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let provider = listener.local_addr().unwrap();
    let document = axum::Router::new().route("/jwks.json", axum::routing::get(move || async move { axum::Json(jwks) }));
    tokio::spawn(async move { axum::serve(listener, document).await });
    let key = EncodingKey::from_ec_der(pkcs8.as_ref());
    let sign = |claims: &Value| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("es256-test".into());
        encode(&header, claims, &key).unwrap()
    };
    let settings =
        JwtSettings { jwks_url: Some(format!("http://127.0.0.1:{}/jwks.json", provider.port())), ..settings() };
    let (base, _dir) = service(settings, &sign(&claims("editor"))).await;
    assert_eq!(names(&base, &sign(&claims("viewer"))).await.unwrap(), ["\"Open Ltd\""]);
    let mut late = claims("viewer");
    late["nbf"] = json!(now() + 3600);
    assert!(names(&base, &sign(&late)).await.unwrap_err().contains("not valid yet"));
}

#[test]
fn jwt_settings_that_cannot_work_are_refused_at_start() {
    let refused = |settings: JwtSettings| Tokens::new(&settings).expect_err("refused").to_string();
    assert!(refused(JwtSettings { hs256_secret: Some("short".into()), ..settings() }).contains("32 bytes"));
    assert!(refused(JwtSettings { issuer: None, hs256_secret: Some(SECRET.into()), ..settings() }).contains("issuer"));
    assert!(refused(settings()).contains("no key"));
    let both = JwtSettings { hs256_secret: Some(SECRET.into()), jwks_file: Some("x.json".into()), ..settings() };
    assert!(refused(both).contains("only one"));
    let plain = JwtSettings { jwks_url: Some("http://idp.example.com/jwks.json".into()), ..settings() };
    assert!(refused(plain).contains("https"));
    assert!(Tokens::new(&JwtSettings::default()).unwrap().is_none(), "no [jwt]: no tokens");
}

/// The real binary, configured from the environment with a hashed API key and an HS256 secret, at debug level:
/// its log holds neither the key, nor its digest's use, nor any token or the secret.
#[test]
fn keys_and_tokens_never_appear_in_the_log() {
    use std::io::BufRead;
    let key = "a-plain-editor-key-0123456789";
    let digest: String = ring::digest::digest(&ring::digest::SHA256, key.as_bytes())
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stakegraph"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("log.db"))
        .env("STAKEGRAPH_API_KEYS", format!("editor:sha256:{digest}"))
        .env("STAKEGRAPH_JWT_ISSUER", ISSUER)
        .env("STAKEGRAPH_JWT_AUDIENCE", AUDIENCE)
        .env("STAKEGRAPH_JWT_SECRET", SECRET);
    let mut child =
        command.env("RUST_LOG", "debug").env("NO_COLOR", "1").stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    let address = loop {
        let line = lines.next().expect("the server logs its address").unwrap();
        log.push(line.clone());
        if let Some(start) = line.find("address=") {
            break line[start + "address=".len()..].split_whitespace().next().unwrap().to_owned();
        }
    };
    let tail = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<String>>());
    let editor = hs256(&claims("editor"), SECRET);
    let mut expired = claims("editor");
    expired["exp"] = json!(now() - 600);
    let expired = hs256(&expired, SECRET);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let base = format!("http://{address}");
        crate::support::wait_until_ready(&reqwest::Client::new(), &base).await;
        assert!(names(&base, key).await.is_ok(), "the hashed key lets its editor in");
        assert!(names(&base, &editor).await.is_ok());
        assert!(names(&base, &expired).await.is_err());
        assert!(names(&base, "a-wrong-key-0123456789abcdef").await.is_err());
    });
    child.kill().unwrap();
    child.wait().unwrap();
    log.extend(tail.join().unwrap());
    let log = log.join("\n");
    assert!(log.contains("GraphQL") || log.len() > 100, "the log was read: {log}");
    for secret in [key, digest.as_str(), &editor, &expired, SECRET, "a-wrong-key-0123456789abcdef"] {
        assert!(!log.contains(secret), "the log holds a credential:\n{log}");
    }
    // Nor a token's signature alone.
    let signature = editor.rsplit('.').next().unwrap();
    assert!(!log.contains(signature));
}

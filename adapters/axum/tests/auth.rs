//! Bearer tokens (HS256, ES256 and RS256 from PEM, a JWKS file) and tenants, through the
//! context layer. The ES256 keys are made at test time; the RS256 keys are fixtures
//! (`tests/fixtures/rs256_*.pem`, test keys only).

mod common;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use cqrs_ddd::App;
use cqrs_ddd_axum::{Api, AuthConfig, ContextLayer, JwtConfig};
use jsonwebtoken::{Algorithm, EncodingKey};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

const SECRET: &[u8] = b"a shared secret of at least 32 bytes!";

fn router(layer: ContextLayer) -> Router {
    Api::new(App::builder().build().expect("wired")).context(layer).commands().router()
}

async fn whoami(router: &Router, headers: &[(&str, &str)]) -> Answer {
    call(router, post("/commands/Whoami", "{}", headers)).await
}

fn hs256(claims: &Value) -> String {
    token(Algorithm::HS256, &EncodingKey::from_secret(SECRET), None, claims)
}

/// An ES256 key pair made now: the signing key, and the public key as PEM.
fn es256_pair() -> (EncodingKey, SigningKey, String) {
    let signing = loop {
        if let Ok(key) = SigningKey::from_slice(&rand::random::<[u8; 32]>()) {
            break key;
        }
    };
    let private = signing.to_pkcs8_pem(LineEnding::LF).expect("a PKCS#8 PEM");
    let public = signing.verifying_key().to_public_key_pem(LineEnding::LF).expect("a public PEM");
    (EncodingKey::from_ec_pem(private.as_bytes()).expect("an EC encoding key"), signing, public)
}

fn jwk(kid: &str, signing: &SigningKey) -> Value {
    let point = signing.verifying_key().to_encoded_point(false);
    json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(point.x().expect("an x")),
        "y": URL_SAFE_NO_PAD.encode(point.y().expect("a y")),
    })
}

#[track_caller]
fn assert_unauthorized(a: &Answer, detail: &str) {
    a.assert_problem(401, "unauthorized");
    let challenge = a.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{a:?}");
    assert!(a.body["detail"].as_str().unwrap_or_default().contains(detail), "expected `{detail}`: {a:?}");
}

#[tokio::test]
async fn hs256_tokens_set_principal_and_tenant() {
    let router = router(ContextLayer::new().jwt(JwtConfig::hs256(SECRET)));
    let t = hs256(&claims("ada", json!({"tenant": "acme"})));
    let a = whoami(&router, &[("authorization", &bearer(&t))]).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["response"]["principal"], "ada");
    assert_eq!(a.body["response"]["tenant"], "acme");
    // The header may repeat the token's tenant.
    let a = whoami(&router, &[("authorization", &bearer(&t)), ("x-tenant-id", "acme")]).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
}

#[tokio::test]
async fn hs256_refuses_missing_expired_forged_and_early_tokens() {
    let router = router(ContextLayer::new().jwt(JwtConfig::hs256(SECRET).leeway(Duration::from_secs(5))));
    let a = whoami(&router, &[]).await;
    assert_unauthorized(&a, "required");
    assert_eq!(a.header("www-authenticate"), Some("Bearer"));

    let expired = hs256(&json!({"sub": "ada", "exp": now() - 3600}));
    let a = whoami(&router, &[("authorization", &bearer(&expired))]).await;
    assert_unauthorized(&a, "expired");
    assert!(a.header("www-authenticate").unwrap().contains("error=\"invalid_token\""), "{a:?}");

    let forged = token(
        Algorithm::HS256,
        &EncodingKey::from_secret(b"another secret, also 32 bytes long"),
        None,
        &claims("ada", json!({})),
    );
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&forged))]).await, "signature");

    let early = hs256(&claims("ada", json!({"nbf": now() + 3600})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&early))]).await, "not valid yet");

    assert_unauthorized(&whoami(&router, &[("authorization", "Bearer not.a.token")]).await, "malformed");
    assert_unauthorized(&whoami(&router, &[("authorization", "Basic YWRhOnB3")]).await, "Bearer");
}

#[tokio::test]
async fn a_tenant_named_twice_must_be_the_same() {
    let router = router(ContextLayer::new().jwt(JwtConfig::hs256(SECRET)));
    let t = hs256(&claims("ada", json!({"tenant": "acme"})));
    let a = whoami(&router, &[("authorization", &bearer(&t)), ("x-tenant-id", "globex")]).await;
    a.assert_problem(403, "tenant");
    assert!(a.body["detail"].as_str().unwrap().contains("globex"), "{a:?}");

    let resolved = router_with_resolver();
    let a = whoami(&resolved, &[("x-tenant-id", "acme"), ("host", "globex.example")]).await;
    a.assert_problem(403, "tenant");
    let a = whoami(&resolved, &[("host", "globex.example")]).await;
    assert_eq!(a.body["response"]["tenant"], "globex", "{a:?}");
}

fn router_with_resolver() -> Router {
    router(ContextLayer::new().tenant_resolver(|parts| {
        let host = parts.headers.get("host")?.to_str().ok()?;
        host.split_once('.').map(|(tenant, _)| tenant.to_owned())
    }))
}

#[tokio::test]
async fn optional_auth_lets_anonymous_requests_through_but_not_bad_tokens() {
    let router =
        router(ContextLayer::new().jwt(JwtConfig::hs256(SECRET)).auth(AuthConfig::Optional).tenant_claim("org"));
    let a = whoami(&router, &[("x-tenant-id", "acme")]).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.body["response"]["principal"], Value::Null);
    let expired = hs256(&json!({"sub": "ada", "exp": now() - 3600}));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&expired))]).await, "expired");
    let t = hs256(&claims("ada", json!({"org": "initech"})));
    let a = whoami(&router, &[("authorization", &bearer(&t))]).await;
    assert_eq!(a.body["response"]["tenant"], "initech", "the configured claim names the tenant: {a:?}");
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let router =
        router(ContextLayer::new().jwt(JwtConfig::hs256(SECRET).issuer("https://id.example").audience("bank")));
    let good = hs256(&claims("ada", json!({"iss": "https://id.example", "aud": "bank"})));
    assert_eq!(whoami(&router, &[("authorization", &bearer(&good))]).await.status, StatusCode::OK);
    let other_issuer = hs256(&claims("ada", json!({"iss": "https://evil.example", "aud": "bank"})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&other_issuer))]).await, "issuer");
    let other_audience = hs256(&claims("ada", json!({"iss": "https://id.example", "aud": "shop"})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&other_audience))]).await, "audience");
    let no_audience = hs256(&claims("ada", json!({"iss": "https://id.example"})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&no_audience))]).await, "aud");
}

#[tokio::test]
async fn es256_tokens_verify_with_the_public_key_only() {
    let (key, _, public) = es256_pair();
    let router = router(ContextLayer::new().jwt(JwtConfig::es256_pem(&public).expect("the public key reads")));
    let t = token(Algorithm::ES256, &key, None, &claims("bob", json!({"tenant": "acme"})));
    let a = whoami(&router, &[("authorization", &bearer(&t))]).await;
    assert_eq!((a.status, &a.body["response"]["principal"]), (StatusCode::OK, &json!("bob")), "{a:?}");

    let (other, _, _) = es256_pair();
    let forged = token(Algorithm::ES256, &other, None, &claims("bob", json!({})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&forged))]).await, "signature");
    let expired = token(Algorithm::ES256, &key, None, &json!({"sub": "bob", "exp": now() - 3600}));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&expired))]).await, "expired");
    // An HMAC token cannot pass itself off against a public key.
    let hmac = token(Algorithm::HS256, &EncodingKey::from_secret(public.as_bytes()), None, &claims("bob", json!({})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&hmac))]).await, "algorithm");

    let t = token(Algorithm::ES256, &key, None, &claims("bob", json!({"tenant": "acme"})));
    let a = whoami(&router, &[("authorization", &bearer(&t)), ("x-tenant-id", "globex")]).await;
    a.assert_problem(403, "tenant");
}

#[tokio::test]
async fn rs256_tokens_verify_with_the_public_key_only() {
    let private = include_bytes!("fixtures/rs256_private.pem");
    let public = include_str!("fixtures/rs256_public.pem");
    let key = EncodingKey::from_rsa_pem(private).expect("an RSA encoding key");
    let router = router(ContextLayer::new().jwt(JwtConfig::rs256_pem(public).expect("the public key reads")));
    let t = token(Algorithm::RS256, &key, None, &claims("carol", json!({"tenant": "acme"})));
    let a = whoami(&router, &[("authorization", &bearer(&t))]).await;
    assert_eq!((a.status, &a.body["response"]["principal"]), (StatusCode::OK, &json!("carol")), "{a:?}");

    let other = EncodingKey::from_rsa_pem(include_bytes!("fixtures/rs256_other_private.pem")).expect("an RSA key");
    let forged = token(Algorithm::RS256, &other, None, &claims("carol", json!({})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&forged))]).await, "signature");
    let expired = token(Algorithm::RS256, &key, None, &json!({"sub": "carol", "exp": now() - 3600}));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&expired))]).await, "expired");
    let hmac = token(Algorithm::HS256, &EncodingKey::from_secret(public.as_bytes()), None, &claims("carol", json!({})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&hmac))]).await, "algorithm");
}

#[tokio::test]
async fn a_jwks_file_picks_the_key_by_kid() {
    let (key_1, signing_1, _) = es256_pair();
    let (key_2, signing_2, _) = es256_pair();
    let dir = std::env::temp_dir().join(format!("cqrs-ddd-axum-jwks-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, json!({"keys": [jwk("k1", &signing_1), jwk("k2", &signing_2)]}).to_string()).unwrap();
    let jwt = JwtConfig::jwks_file(&path).expect("the JWKS file reads");
    std::fs::remove_dir_all(&dir).ok();
    let router = router(ContextLayer::new().jwt(jwt));

    for (kid, key) in [("k1", &key_1), ("k2", &key_2)] {
        let t = token(Algorithm::ES256, key, Some(kid), &claims("carol", json!({"tenant": "acme"})));
        let a = whoami(&router, &[("authorization", &bearer(&t))]).await;
        assert_eq!(a.status, StatusCode::OK, "key {kid}: {a:?}");
        assert_eq!(a.body["response"]["principal"], "carol");
    }
    let mislabelled = token(Algorithm::ES256, &key_1, Some("k2"), &claims("carol", json!({})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&mislabelled))]).await, "signature");
    let unknown = token(Algorithm::ES256, &key_1, Some("k9"), &claims("carol", json!({})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&unknown))]).await, "k9");
    let unnamed = token(Algorithm::ES256, &key_1, None, &claims("carol", json!({})));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&unnamed))]).await, "key id");
    let expired = token(Algorithm::ES256, &key_2, Some("k2"), &json!({"sub": "carol", "exp": now() - 3600}));
    assert_unauthorized(&whoami(&router, &[("authorization", &bearer(&expired))]).await, "expired");
    let t = token(Algorithm::ES256, &key_2, Some("k2"), &claims("carol", json!({"tenant": "acme"})));
    whoami(&router, &[("authorization", &bearer(&t)), ("x-tenant-id", "globex")]).await.assert_problem(403, "tenant");
}

#[test]
fn unusable_keys_are_refused_at_configuration() {
    assert!(JwtConfig::es256_pem("not a key").is_err());
    assert!(JwtConfig::rs256_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err());
    assert!(JwtConfig::jwks_json(r#"{"keys": []}"#).is_err());
    assert!(JwtConfig::jwks_json("{").is_err());
    assert!(JwtConfig::jwks_file("/nonexistent/jwks.json").is_err());
}

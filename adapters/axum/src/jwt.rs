//! Bearer tokens: the keys that verify them and the claims they must hold.
//!
//! A [`JwtConfig`] holds one key (an HS256 secret, an RS256 or ES256 public key in PEM) or
//! a JWKS document (keys chosen by the token's `kid`), and what a token must satisfy:
//! `exp` always, `nbf` when present, both with a leeway (30 seconds by default), and the
//! issuer and audience when they are configured. Each key accepts only the algorithms of
//! its own kind, so a token cannot pick a weaker one (an HMAC token checked against a
//! public key is refused). Verification uses the pure-Rust RustCrypto backend of
//! `jsonwebtoken`.

use std::path::Path;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::{Map, Value};

/// A key or key set that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtConfigError {
    /// A PEM that does not hold a public key of the expected kind.
    #[error("the {kind} public key does not read: {reason}")]
    BadKey {
        /// `RSA` or `EC P-256`.
        kind: &'static str,
        /// What `jsonwebtoken` said.
        reason: String,
    },
    /// The JWKS file could not be read.
    #[error("cannot read the JWKS file `{path}`: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The JWKS document does not read, or holds no usable key.
    #[error("the JWKS document is not usable: {0}")]
    Jwks(String),
}

/// One verification key and the algorithms it accepts.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// How bearer tokens are verified: the keys and the claims checked.
///
/// ```
/// use std::time::Duration;
/// use cqrs_ddd_axum::JwtConfig;
///
/// let jwt = JwtConfig::hs256(b"a secret of at least 32 bytes....")
///     .issuer("https://issuer.example")
///     .audience("bank-api")
///     .leeway(Duration::from_secs(10));
/// # let _ = jwt;
/// ```
#[derive(Clone)]
pub struct JwtConfig {
    keys: Vec<Key>,
    issuer: Option<Vec<String>>,
    audience: Option<Vec<String>>,
    leeway: Duration,
}

/// Why a bearer token was refused; each becomes a 401 problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The `Authorization` header is missing, or not `Bearer <token>`.
    #[error("a bearer token is required (`Authorization: Bearer <token>`)")]
    Missing,
    /// `Authorization` is present but not a bearer token.
    #[error("the `Authorization` header is not `Bearer <token>`")]
    NotBearer,
    /// `exp` is past (beyond the leeway).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is still ahead (beyond the leeway).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The signature does not verify with the configured key.
    #[error("the token's signature does not verify")]
    BadSignature,
    /// No configured key has the token's `kid` (or the token names none and there are
    /// several keys).
    #[error("no key verifies tokens with key id {0}")]
    UnknownKey(String),
    /// The token uses an algorithm its key does not accept.
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// `iss` is not the configured issuer.
    #[error("the token's issuer is not accepted")]
    Issuer,
    /// `aud` is not the configured audience.
    #[error("the token's audience is not accepted")]
    Audience,
    /// A claim is missing or of the wrong shape.
    #[error("the token's claims are not valid: {0}")]
    Claims(String),
    /// Not a JWT at all.
    #[error("the token is malformed")]
    Malformed,
}

impl JwtConfig {
    fn with_keys(keys: Vec<Key>) -> Self {
        JwtConfig { keys, issuer: None, audience: None, leeway: Duration::from_secs(30) }
    }

    /// Tokens signed with HMAC-SHA256 and `secret`.
    pub fn hs256(secret: impl AsRef<[u8]>) -> Self {
        let key = DecodingKey::from_secret(secret.as_ref());
        Self::with_keys(vec![Key { kid: None, key, algorithms: vec![Algorithm::HS256] }])
    }

    /// Tokens signed with RS256, verified with the RSA public key in `pem`
    /// (`-----BEGIN PUBLIC KEY-----` or `-----BEGIN RSA PUBLIC KEY-----`).
    pub fn rs256_pem(pem: impl AsRef<[u8]>) -> Result<Self, JwtConfigError> {
        let key = DecodingKey::from_rsa_pem(pem.as_ref())
            .map_err(|e| JwtConfigError::BadKey { kind: "RSA", reason: e.to_string() })?;
        Ok(Self::with_keys(vec![Key { kid: None, key, algorithms: vec![Algorithm::RS256] }]))
    }

    /// Tokens signed with ES256, verified with the P-256 public key in `pem`
    /// (`-----BEGIN PUBLIC KEY-----`).
    pub fn es256_pem(pem: impl AsRef<[u8]>) -> Result<Self, JwtConfigError> {
        let key = DecodingKey::from_ec_pem(pem.as_ref())
            .map_err(|e| JwtConfigError::BadKey { kind: "EC P-256", reason: e.to_string() })?;
        Ok(Self::with_keys(vec![Key { kid: None, key, algorithms: vec![Algorithm::ES256] }]))
    }

    /// The keys of a JWKS document (`{"keys": [..]}`) in the file at `path`, read now.
    /// A token names its key with `kid`; a token without one is accepted only when the
    /// set holds a single key.
    pub fn jwks_file(path: impl AsRef<Path>) -> Result<Self, JwtConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| JwtConfigError::Io { path: path.display().to_string(), source })?;
        Self::jwks_json(&text)
    }

    /// The keys of a JWKS document given as JSON text; see [`JwtConfig::jwks_file`].
    pub fn jwks_json(json: &str) -> Result<Self, JwtConfigError> {
        let set: JwkSet = serde_json::from_str(json).map_err(|e| JwtConfigError::Jwks(e.to_string()))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone();
            let name = kid.clone().unwrap_or_else(|| "without `kid`".to_owned());
            let algorithms = match jwk.common.key_algorithm {
                Some(alg) => vec![Algorithm::try_from(alg).map_err(|_| {
                    JwtConfigError::Jwks(format!("key {name} names algorithm `{alg}`, which cannot sign tokens"))
                })?],
                None => match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => vec![
                        Algorithm::RS256,
                        Algorithm::RS384,
                        Algorithm::RS512,
                        Algorithm::PS256,
                        Algorithm::PS384,
                        Algorithm::PS512,
                    ],
                    AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                        EllipticCurve::P256 => vec![Algorithm::ES256],
                        EllipticCurve::P384 => vec![Algorithm::ES384],
                        _ => return Err(JwtConfigError::Jwks(format!("key {name} is on an unsupported curve"))),
                    },
                    AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                    AlgorithmParameters::OctetKey(_) => vec![Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
                    _ => return Err(JwtConfigError::Jwks(format!("key {name} is of an unsupported type"))),
                },
            };
            let key = DecodingKey::from_jwk(jwk).map_err(|e| JwtConfigError::Jwks(format!("key {name}: {e}")))?;
            keys.push(Key { kid, key, algorithms });
        }
        if keys.is_empty() {
            return Err(JwtConfigError::Jwks("it holds no key".to_owned()));
        }
        Ok(Self::with_keys(keys))
    }

    /// Accepts only tokens whose `iss` is `issuer` (call again to accept several).
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer.get_or_insert_with(Vec::new).push(issuer.into());
        self
    }

    /// Accepts only tokens whose `aud` names `audience` (call again to accept several).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience.get_or_insert_with(Vec::new).push(audience.into());
        self
    }

    /// The clock skew tolerated on `exp` and `nbf` (30 seconds by default).
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    fn validation(&self, algorithms: &[Algorithm]) -> Validation {
        let mut v = Validation::new(algorithms.first().copied().unwrap_or_default());
        v.algorithms = algorithms.to_vec();
        v.leeway = self.leeway.as_secs();
        v.validate_nbf = true;
        match &self.audience {
            Some(aud) => v.set_audience(aud),
            None => v.validate_aud = false,
        }
        if let Some(iss) = &self.issuer {
            v.set_issuer(iss);
            v.required_spec_claims.insert("iss".to_owned());
        }
        if self.audience.is_some() {
            v.required_spec_claims.insert("aud".to_owned());
        }
        v
    }

    fn key_for(&self, kid: Option<&str>) -> Result<&Key, TokenError> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|k| k.kid.as_deref() == Some(kid))
                .or_else(|| match self.keys.as_slice() {
                    // A single key without an id of its own verifies any token.
                    [only] if only.kid.is_none() => Some(only),
                    _ => None,
                })
                .ok_or_else(|| TokenError::UnknownKey(format!("`{kid}`"))),
            None => match self.keys.as_slice() {
                [only] => Ok(only),
                _ => Err(TokenError::UnknownKey("(none given)".to_owned())),
            },
        }
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let key = self.key_for(header.kid.as_deref())?;
        if !key.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm);
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &self.validation(&key.algorithms))
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => TokenError::Algorithm,
                ErrorKind::InvalidIssuer => TokenError::Issuer,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::MissingRequiredClaim(c) => TokenError::Claims(format!("`{c}` is missing")),
                ErrorKind::InvalidClaimFormat(c) => TokenError::Claims(format!("`{c}` is malformed")),
                _ => TokenError::Malformed,
            })?;
        Ok(data.claims)
    }
}

/// Installs the RustCrypto provider of `jsonwebtoken` for the process, unless one is
/// installed already (the crate would otherwise panic when another dependency enables
/// its second backend).
pub(crate) fn install_crypto() {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

//! Standard Webhooks v1.0.0 signing: secrets are `whsec_` + base64 of 24 to 64 random bytes
//! (the key is the decoded bytes); a message is signed as `v1,` + base64 of HMAC-SHA256 over
//! `{webhook-id}.{webhook-timestamp}.{body}`, several signatures space-separated in one
//! `webhook-signature` header while a secret is being rotated.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use valhalla_sdk::prelude::*;

const PREFIX: &str = "whsec_";
/// Key lengths Standard Webhooks allows, in bytes.
const MIN_KEY: usize = 24;
const MAX_KEY: usize = 64;
/// The length of a generated key.
const GENERATED_KEY: usize = 32;

/// A new secret from the host's secure random source.
pub(crate) fn generate_secret() -> String {
    let mut key = [0u8; GENERATED_KEY];
    crypto::random_bytes(&mut key);
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// The key of a `whsec_…` secret, or why it is not one.
pub(crate) fn key_of(secret: &str) -> Result<Vec<u8>, &'static str> {
    let encoded = secret.strip_prefix(PREFIX).ok_or("must start with `whsec_`")?;
    let key = STANDARD.decode(encoded).map_err(|_| "must be `whsec_` and base64 after it")?;
    if (MIN_KEY..=MAX_KEY).contains(&key.len()) {
        Ok(key)
    } else {
        Err("must hold 24 to 64 bytes (base64 after `whsec_`)")
    }
}

/// For `#[validate(custom(function = …))]`.
pub(crate) fn secret_shape(secret: &str) -> Result<(), &'static str> {
    key_of(secret).map(|_| ())
}

/// `v1,<base64 signature>` of one message under one key (HMAC takes a key of any length, so
/// this is always `Some`).
pub(crate) fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` header: a signature per secret, the current one first. A secret
/// that does not decode (none the pack stored) is left out.
pub(crate) fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    let signatures: Vec<String> = secrets
        .iter()
        .filter_map(|s| key_of(s).ok())
        .filter_map(|key| sign(&key, id, timestamp, body))
        .collect();
    signatures.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and its reference libraries.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn the_specifications_example_signs_alike() {
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature_header(&[SPEC_SECRET], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_rotation_sends_both_signatures() {
        let new = generate_secret_from(&[7u8; 32]);
        let header = signature_header(&[&new, SPEC_SECRET], "id", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn secrets_are_checked() {
        assert_eq!(key_of(SPEC_SECRET).unwrap().len(), 24);
        assert!(key_of("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err(), "no prefix");
        assert!(key_of("whsec_not base64!").is_err());
        assert!(key_of(&format!("whsec_{}", STANDARD.encode([1u8; 23]))).is_err());
        assert!(key_of(&format!("whsec_{}", STANDARD.encode([1u8; 65]))).is_err());
        assert!(key_of(&generate_secret_from(&[1u8; 64])).is_ok());
    }

    fn generate_secret_from(key: &[u8]) -> String {
        format!("{PREFIX}{}", STANDARD.encode(key))
    }
}

//! Signed checkpoints in the C2SP forms: a `tlog-checkpoint` body (origin, tree size, root hash, and
//! a `time` extension line) signed as a `signed-note` with Ed25519.
//!
//! ```text
//! sentinel/host-1
//! 4
//! 3ZSUnLO2Yd2GZhg5I6lb9jrI6+yvQJ7Zlq3TOzVqo+s=
//! time 1764476400123
//!
//! — sentinel/host-1 pQ3E1Q9z…
//! ```
//!
//! The signature line is an em dash, the key's name, and base64 of the key id (4 bytes) followed by
//! the 64-byte Ed25519 signature of the body. The key id is the first 4 bytes of
//! SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key). Keys are written as the note format writes them:
//! `PRIVATE+KEY+<name>+<id as 8 hex digits>+<base64(0x01 ‖ seed)>` and `<name>+<id>+<base64(0x01 ‖ public key)>`.

use crate::merkle::Hash;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use sha2::{Digest, Sha256};
use std::fmt;

/// The algorithm byte of an Ed25519 key in the signed-note format.
const ALG_ED25519: u8 = 0x01;
/// What starts a signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// Why a key, a note or a checkpoint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// A key in the wrong form.
    #[error("malformed key: {0}")]
    Key(String),
    /// A note or checkpoint in the wrong form.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// No signature by the expected key.
    #[error("no signature by key {0}")]
    NotSigned(String),
    /// A signature by the expected key that does not verify.
    #[error("the signature by key {0} does not verify")]
    BadSignature(String),
}

fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A key name: not empty, no `+`, no whitespace or control characters.
fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty()
        || name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c.is_control())
    {
        return Err(NoteError::Key(format!(
            "name {name:?} must be non-empty, without '+' or spaces"
        )));
    }
    Ok(())
}

fn key_bytes(b64: &str) -> Result<[u8; 32], NoteError> {
    let raw = B64
        .decode(b64)
        .map_err(|e| NoteError::Key(format!("key data is not base64: {e}")))?;
    match raw.split_first() {
        Some((&ALG_ED25519, rest)) => rest
            .try_into()
            .map_err(|_| NoteError::Key(format!("Ed25519 key has {} bytes, not 32", rest.len()))),
        Some((alg, _)) => Err(NoteError::Key(format!("unknown key algorithm {alg}"))),
        None => Err(NoteError::Key("empty key data".into())),
    }
}

/// The signing half of a log's key.
pub struct Signer {
    name: String,
    id: u32,
    key: SigningKey,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("id", &format_args!("{:08x}", self.id))
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A new key named `name`, from the operating system's random source.
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
        Self::from_seed(name, seed)
    }

    /// The key named `name` with this 32-byte seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(Signer {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// Reads a key written by [`Self::to_private_text`].
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim_end_matches('\n');
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| NoteError::Key("a private key starts with PRIVATE+KEY+".into()))?;
        // A name holds no '+' but base64 data may: split from the left.
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key(
                "expected PRIVATE+KEY+<name>+<id>+<data>".into(),
            ));
        };
        let s = Self::from_seed(name, key_bytes(data)?)?;
        if format!("{:08x}", s.id) != id {
            return Err(NoteError::Key(format!(
                "key id {id} does not match the key ({:08x})",
                s.id
            )));
        }
        Ok(s)
    }

    /// The key's name (the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The private key in the note format (keep it secret: mode 0600).
    pub fn to_private_text(&self) -> String {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            B64.encode(data)
        )
    }

    /// The matching verifier.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs a checkpoint.
    pub fn sign(&self, c: &Checkpoint) -> SignedCheckpoint {
        let body = c.body();
        let sig = self.key.sign(body.as_bytes());
        let mut blob = self.id.to_be_bytes().to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        let text = format!("{body}\n{SIG_PREFIX}{} {}\n", self.name, B64.encode(blob));
        SignedCheckpoint {
            checkpoint: c.clone(),
            text,
        }
    }
}

/// The public half of a log's key: checks checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl Verifier {
    /// Reads a verifier key `<name>+<id>+<base64(0x01 ‖ key)>`.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let text = text.trim();
        // A name holds no '+' but base64 data may: split from the left.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::Key("expected <name>+<id>+<data>".into()));
        };
        check_name(name)?;
        let bytes = key_bytes(data)?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| NoteError::Key(format!("not an Ed25519 public key: {e}")))?;
        let want = key_id(name, &bytes);
        if format!("{want:08x}") != id {
            return Err(NoteError::Key(format!(
                "key id {id} does not match the key ({want:08x})"
            )));
        }
        Ok(Verifier {
            name: name.to_owned(),
            id: want,
            key,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verifier key in the note format.
    pub fn to_text(&self) -> String {
        let mut data = vec![ALG_ED25519];
        data.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.id, B64.encode(data))
    }

    /// Parses a signed checkpoint and checks this key's signature on it; other signatures (a
    /// witness's cosignature, say) are kept in the text and not checked.
    pub fn verify(&self, text: &str) -> Result<SignedCheckpoint, NoteError> {
        let (body, sigs) = split_note(text)?;
        let checkpoint = Checkpoint::parse(body)?;
        let mut found = false;
        for line in sigs.lines() {
            let rest = line
                .strip_prefix(SIG_PREFIX)
                .ok_or_else(|| NoteError::Malformed(format!("bad signature line {line:?}")))?;
            let (name, b64) = rest
                .split_once(' ')
                .ok_or_else(|| NoteError::Malformed(format!("bad signature line {line:?}")))?;
            if name != self.name {
                continue;
            }
            let blob = B64
                .decode(b64)
                .map_err(|e| NoteError::Malformed(format!("signature is not base64: {e}")))?;
            let Some((id, sig)) = blob.split_first_chunk::<4>() else {
                return Err(NoteError::Malformed("signature too short".into()));
            };
            if u32::from_be_bytes(*id) != self.id {
                continue;
            }
            found = true;
            let sig =
                Signature::from_slice(sig).map_err(|_| NoteError::BadSignature(self.to_text()))?;
            self.key
                .verify(body.as_bytes(), &sig)
                .map_err(|_| NoteError::BadSignature(self.to_text()))?;
        }
        if !found {
            return Err(NoteError::NotSigned(self.to_text()));
        }
        if checkpoint.origin != self.name {
            return Err(NoteError::Malformed(format!(
                "origin {:?} is not the key's name {:?}",
                checkpoint.origin, self.name
            )));
        }
        Ok(SignedCheckpoint {
            checkpoint,
            text: text.to_owned(),
        })
    }
}

/// Splits a signed note into its body (ending in a newline) and its signature lines.
fn split_note(text: &str) -> Result<(&str, &str), NoteError> {
    let at = text
        .find("\n\n")
        .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
    let (body, sigs) = (&text[..=at], &text[at + 2..]);
    if !sigs.ends_with('\n') || sigs.trim().is_empty() {
        return Err(NoteError::Malformed("no signature lines".into()));
    }
    Ok((body, sigs))
}

/// A log's state at one moment: its origin, how many records it holds, their root hash, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Names the log (`sentinel/<host>`); also the signing key's name.
    pub origin: String,
    /// How many records the tree holds.
    pub size: u64,
    /// The Merkle root of those records.
    pub root: Hash,
    /// When it was made, in milliseconds since the Unix epoch.
    pub time_ms: u64,
}

impl Checkpoint {
    /// The note body: origin, size, base64 root, `time <ms>`, each ending in a newline.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin,
            self.size,
            B64.encode(self.root),
            self.time_ms
        )
    }

    /// Reads a body made by [`Self::body`].
    pub fn parse(body: &str) -> Result<Self, NoteError> {
        let bad = |what: &str| NoteError::Malformed(what.to_owned());
        let body = body
            .strip_suffix('\n')
            .ok_or_else(|| bad("the body must end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or_else(|| bad("no origin"))?;
        let size = lines.next().ok_or_else(|| bad("no tree size"))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(bad(&format!("tree size {size:?} is not a decimal number")));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| bad(&format!("tree size {size:?} is too large")))?;
        let root = lines.next().ok_or_else(|| bad("no root hash"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad(&format!("root hash {root:?} is not base64 of 32 bytes")))?;
        let mut time_ms = None;
        for ext in lines {
            if let Some(t) = ext.strip_prefix("time ") {
                let t: u64 = t.parse().map_err(|_| bad(&format!("bad time {t:?}")))?;
                if time_ms.replace(t).is_some() {
                    return Err(bad("two time lines"));
                }
            } else if ext.is_empty() {
                return Err(bad("empty line in the body"));
            }
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            time_ms: time_ms.ok_or_else(|| bad("no time line"))?,
        })
    }
}

/// A checkpoint with its signed-note text, exactly as signed and kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// What it says.
    pub checkpoint: Checkpoint,
    /// The signed note.
    pub text: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fixed() -> Signer {
        Signer::from_seed("sentinel/test", [7u8; 32]).unwrap()
    }

    fn cp(size: u64) -> Checkpoint {
        Checkpoint {
            origin: "sentinel/test".into(),
            size,
            root: crate::merkle::empty_root(),
            time_ms: 1_764_476_400_123,
        }
    }

    /// The text form is fixed: a format change breaks this on purpose (Ed25519 signatures are
    /// deterministic, so the whole note is). The expected values were computed independently, with
    /// Python's `cryptography` package, from the same seed and body.
    #[test]
    fn golden_checkpoint_text_and_keys() {
        let s = fixed();
        let signed = s.sign(&cp(4));
        assert_eq!(
            signed.text,
            "sentinel/test\n4\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime 1764476400123\n\n\
             \u{2014} sentinel/test fL3RKN/YePcmpHv/SE9H/dhml0Ok9brXqPOt1eDGXV3h7v8OwRzahMO6tw1W/J3CZSyPV4PuQmWnWA+N0RYzQSMzdws=\n"
        );
        assert_eq!(
            s.verifier().to_text(),
            "sentinel/test+7cbdd128+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"
        );
        assert_eq!(
            Signer::parse(&s.to_private_text()).unwrap().verifier(),
            s.verifier()
        );
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_is_refused() {
        let s = fixed();
        let v = Verifier::parse(&s.verifier().to_text()).unwrap();
        let signed = s.sign(&cp(12));
        assert_eq!(v.verify(&signed.text).unwrap(), signed);

        let edited = signed.text.replacen("\n12\n", "\n13\n", 1);
        assert!(matches!(v.verify(&edited), Err(NoteError::BadSignature(_))));
        let other = Signer::from_seed("sentinel/test", [8u8; 32]).unwrap();
        assert!(matches!(
            v.verify(&other.sign(&cp(12)).text),
            Err(NoteError::NotSigned(_))
        ));
        assert!(v.verify("sentinel/test\n12\n").is_err());
        assert!(v.verify(&signed.text.replace("time", "tine")).is_err());
    }

    /// Base64 key data may hold '+': keys are split from the left (a name never holds one).
    #[test]
    fn keys_whose_data_holds_a_plus_round_trip() {
        let mut found = 0;
        for b in 0..=255u8 {
            let s = Signer::from_seed("sentinel/test", [b; 32]).unwrap();
            let (private, public) = (s.to_private_text(), s.verifier().to_text());
            if private.matches('+').count() > 4 || public.matches('+').count() > 2 {
                found += 1;
                assert_eq!(Signer::parse(&private).unwrap().verifier(), s.verifier());
                assert_eq!(Verifier::parse(&public).unwrap(), s.verifier());
            }
        }
        assert!(found > 0);
    }

    #[test]
    fn malformed_bodies_and_keys_are_refused() {
        for body in [
            "o\n012\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime 1\n",
            "o\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime 1\n",
            "o\n1\nAAAA\ntime 1\n",
            "o\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
            "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\ntime 1\n",
        ] {
            assert!(Checkpoint::parse(body).is_err(), "{body:?}");
        }
        assert!(Signer::from_seed("has space", [1; 32]).is_err());
        assert!(Verifier::parse(
            "sentinel/test+00000000+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs"
        )
        .is_err());
        assert!(Signer::parse("PRIVATE+KEY+x+00000000+AQ==").is_err());
    }
}

//! Envelope encryption: master key → tenant key → data key → chunks.
//!
//! An object is a [`Header`] followed by chunks. Each chunk is up to [`CHUNK`] bytes of
//! plaintext sealed with AES-256-GCM under the object's data key; its nonce is the
//! object's random 7-byte prefix, the chunk's 4-byte counter and a final-chunk flag, and
//! its associated data binds the tenant and the object key. A data key is used for one
//! object only, so the counter nonces never repeat under one key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use gatehouse_core::TenantId;

/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const MAGIC: &[u8; 4] = b"GHE1";
const PREFIX: usize = 7;
const WRAPPED: usize = 12 + 32 + TAG;
/// Bytes of an object's header.
pub const HEADER: usize = MAGIC.len() + 16 + WRAPPED + PREFIX;

/// Why sealing or opening failed. Never says more than that (no key material, no
/// plaintext).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not an object sealed here (bad magic or length).
    #[error("not a sealed object")]
    NotSealed,
    /// A key or chunk failed authentication: altered, truncated, reordered, another
    /// tenant's or another object's.
    #[error("the object failed authentication")]
    Tampered,
    /// A master key or tenant key of the wrong length.
    #[error("a key must be 32 bytes")]
    KeyLength,
}

/// The key that wraps every tenant key. From configuration (a file or an environment
/// variable); never logged.
#[derive(Clone)]
pub struct MasterKey(Aes256Gcm);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A master key from its 32 bytes.
    ///
    /// # Errors
    /// [`EnvelopeError::KeyLength`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let key = <[u8; 32]>::try_from(bytes).map_err(|_| EnvelopeError::KeyLength)?;
        Ok(Self(Aes256Gcm::new(&Key::<Aes256Gcm>::from(key))))
    }

    /// A new random tenant key for `tenant`, and its wrapped form to store.
    pub fn new_tenant_key(&self, tenant: &TenantId) -> (TenantKey, Vec<u8>) {
        let id = *uuid::Uuid::new_v4().as_bytes();
        let secret: [u8; 32] = rand::random();
        let wrapped = wrap(&self.0, &secret, &tenant_key_aad(tenant, &id));
        (TenantKey::new(tenant.clone(), id, &secret), wrapped)
    }

    /// The tenant key `id` of `tenant` from its wrapped form.
    ///
    /// # Errors
    /// [`EnvelopeError::Tampered`] when it was not wrapped by this master key for this
    /// tenant and id.
    pub fn unwrap_tenant_key(
        &self,
        tenant: &TenantId,
        id: [u8; 16],
        wrapped: &[u8],
    ) -> Result<TenantKey, EnvelopeError> {
        let secret = unwrap(&self.0, wrapped, &tenant_key_aad(tenant, &id))?;
        Ok(TenantKey::new(tenant.clone(), id, &secret))
    }
}

/// One tenant's key: wraps the data key of each of its objects.
pub struct TenantKey {
    tenant: TenantId,
    id: [u8; 16],
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey")
            .field("tenant", &self.tenant)
            .field("id", &uuid::Uuid::from_bytes(self.id))
            .finish_non_exhaustive()
    }
}

impl TenantKey {
    fn new(tenant: TenantId, id: [u8; 16], secret: &[u8; 32]) -> Self {
        Self {
            tenant,
            id,
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*secret)),
        }
    }

    /// The key's id, as stored next to its wrapped form and named in object headers.
    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    /// Starts sealing object `object_key` with a fresh data key; the header goes first.
    pub fn seal(&self, object_key: &str) -> (Vec<u8>, Sealer) {
        let data_key: [u8; 32] = rand::random();
        let prefix: [u8; PREFIX] = rand::random();
        let aad = object_aad(&self.tenant, object_key);
        let mut header = Vec::with_capacity(HEADER);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&self.id);
        header.extend_from_slice(&wrap(&self.cipher, &data_key, &aad));
        header.extend_from_slice(&prefix);
        let sealer = Sealer {
            chunks: Chunks::new(&data_key, prefix, aad),
            pending: Vec::with_capacity(CHUNK),
        };
        (header, sealer)
    }

    /// Starts opening object `object_key`, whose header is `header`.
    ///
    /// # Errors
    /// [`EnvelopeError::Tampered`] when the header was not sealed with this key for this
    /// tenant and object.
    pub fn open(&self, object_key: &str, header: &Header) -> Result<Opener, EnvelopeError> {
        if header.key_id != self.id {
            return Err(EnvelopeError::Tampered);
        }
        let aad = object_aad(&self.tenant, object_key);
        let data_key: [u8; 32] = unwrap(&self.cipher, &header.wrapped, &aad)?;
        Ok(Opener {
            chunks: Chunks::new(&data_key, header.prefix, aad),
            pending: Vec::with_capacity(CHUNK + TAG),
        })
    }
}

/// An object's header: which tenant key, its wrapped data key, its nonce prefix.
#[derive(Debug, Clone)]
pub struct Header {
    key_id: [u8; 16],
    wrapped: [u8; WRAPPED],
    prefix: [u8; PREFIX],
}

impl Header {
    /// The header at the start of a sealed object ([`HEADER`] bytes).
    ///
    /// # Errors
    /// [`EnvelopeError::NotSealed`].
    pub fn parse(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() != HEADER || &bytes[..4] != MAGIC {
            return Err(EnvelopeError::NotSealed);
        }
        let take = |from: usize, len: usize| &bytes[from..from + len];
        Ok(Self {
            key_id: take(4, 16)
                .try_into()
                .map_err(|_| EnvelopeError::NotSealed)?,
            wrapped: take(20, WRAPPED)
                .try_into()
                .map_err(|_| EnvelopeError::NotSealed)?,
            prefix: take(20 + WRAPPED, PREFIX)
                .try_into()
                .map_err(|_| EnvelopeError::NotSealed)?,
        })
    }

    /// The id of the tenant key that can open the object.
    pub fn key_id(&self) -> [u8; 16] {
        self.key_id
    }
}

/// The chunk cipher of one object.
struct Chunks {
    cipher: Aes256Gcm,
    prefix: [u8; PREFIX],
    counter: u32,
    aad: Vec<u8>,
}

impl Chunks {
    fn new(data_key: &[u8; 32], prefix: [u8; PREFIX], aad: Vec<u8>) -> Self {
        Self {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(*data_key)),
            prefix,
            counter: 0,
            aad,
        }
    }

    fn nonce(&self, last: bool) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[..PREFIX].copy_from_slice(&self.prefix);
        nonce[PREFIX..PREFIX + 4].copy_from_slice(&self.counter.to_be_bytes());
        nonce[11] = u8::from(last);
        nonce
    }

    fn seal(&mut self, plaintext: &[u8], last: bool, out: &mut Vec<u8>) {
        let nonce = self.nonce(last);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &self.aad,
                },
            )
            .expect("AES-GCM seals any chunk under 64 GiB");
        out.extend_from_slice(&sealed);
        self.counter += 1;
    }

    fn open(&mut self, sealed: &[u8], last: bool, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        let nonce = self.nonce(last);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: sealed,
                    aad: &self.aad,
                },
            )
            .map_err(|_| EnvelopeError::Tampered)?;
        out.extend_from_slice(&plain);
        self.counter = self.counter.checked_add(1).ok_or(EnvelopeError::Tampered)?;
        Ok(())
    }
}

/// Seals an object's plaintext as it arrives, a chunk at a time.
pub struct Sealer {
    chunks: Chunks,
    pending: Vec<u8>,
}

impl Sealer {
    /// Takes more plaintext; appends the chunks it completes to `out`. The last chunk is
    /// held back until [`Sealer::finish`], which marks it final.
    pub fn update(&mut self, mut plaintext: &[u8], out: &mut Vec<u8>) {
        while !plaintext.is_empty() {
            if self.pending.len() == CHUNK {
                self.chunks.seal(&self.pending, false, out);
                self.pending.clear();
            }
            let take = (CHUNK - self.pending.len()).min(plaintext.len());
            self.pending.extend_from_slice(&plaintext[..take]);
            plaintext = &plaintext[take..];
        }
    }

    /// Seals the final chunk (possibly empty) into `out`.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        let last = std::mem::take(&mut self.pending);
        self.chunks.seal(&last, true, out);
    }
}

/// Opens an object's chunks (after its header) as they arrive.
pub struct Opener {
    chunks: Chunks,
    pending: Vec<u8>,
}

impl Opener {
    /// Takes more of the sealed object; appends the plaintext of the chunks it completes
    /// to `out`. Plaintext is only ever released once its chunk is authenticated.
    ///
    /// # Errors
    /// [`EnvelopeError::Tampered`].
    pub fn update(&mut self, mut sealed: &[u8], out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        while !sealed.is_empty() {
            // A full chunk is opened only once a byte after it shows it is not the last.
            if self.pending.len() == CHUNK + TAG {
                self.chunks.open(&self.pending, false, out)?;
                self.pending.clear();
            }
            let take = (CHUNK + TAG - self.pending.len()).min(sealed.len());
            self.pending.extend_from_slice(&sealed[..take]);
            sealed = &sealed[take..];
        }
        Ok(())
    }

    /// Opens the final chunk into `out`: a sealed object that stops early fails here.
    ///
    /// # Errors
    /// [`EnvelopeError::Tampered`].
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<(), EnvelopeError> {
        let last = std::mem::take(&mut self.pending);
        self.chunks.open(&last, true, out)
    }
}

fn tenant_key_aad(tenant: &TenantId, id: &[u8; 16]) -> Vec<u8> {
    let mut aad = b"gatehouse tenant key\0".to_vec();
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(id);
    aad
}

fn object_aad(tenant: &TenantId, object_key: &str) -> Vec<u8> {
    let mut aad = b"gatehouse object\0".to_vec();
    aad.extend_from_slice(tenant.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(object_key.as_bytes());
    aad
}

/// Seals a 32-byte key: a random nonce, then the ciphertext and tag.
fn wrap(cipher: &Aes256Gcm, key: &[u8; 32], aad: &[u8]) -> Vec<u8> {
    let nonce: [u8; 12] = rand::random();
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: key, aad })
        .expect("AES-GCM seals 32 bytes");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

fn unwrap(cipher: &Aes256Gcm, wrapped: &[u8], aad: &[u8]) -> Result<[u8; 32], EnvelopeError> {
    if wrapped.len() != WRAPPED {
        return Err(EnvelopeError::Tampered);
    }
    let (nonce, sealed) = wrapped.split_at(12);
    let key = cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
        .map_err(|_| EnvelopeError::Tampered)?;
    key.try_into().map_err(|_| EnvelopeError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Seals `data`, fed in `piece`-sized slices.
    fn seal(key: &TenantKey, object: &str, data: &[u8], piece: usize) -> Vec<u8> {
        let (mut out, mut sealer) = key.seal(object);
        for part in data.chunks(piece.max(1)) {
            sealer.update(part, &mut out);
        }
        sealer.finish(&mut out);
        out
    }

    fn open(
        key: &TenantKey,
        object: &str,
        sealed: &[u8],
        piece: usize,
    ) -> Result<Vec<u8>, EnvelopeError> {
        if sealed.len() < HEADER {
            return Err(EnvelopeError::NotSealed);
        }
        let header = Header::parse(&sealed[..HEADER])?;
        let mut opener = key.open(object, &header)?;
        let mut out = Vec::new();
        for part in sealed[HEADER..].chunks(piece.max(1)) {
            opener.update(part, &mut out)?;
        }
        opener.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn every_size_round_trips_however_it_is_fed() {
        let master = MasterKey::from_bytes(&[7; 32]).unwrap();
        let (key, _) = master.new_tenant_key(&acme());
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + CHUNK / 2] {
            let data = plaintext(len);
            for piece in [1000, CHUNK, 7 * CHUNK] {
                let sealed = seal(&key, "acme/doc/1", &data, piece);
                assert_eq!(
                    sealed.len(),
                    HEADER + len + TAG * len.div_ceil(CHUNK).max(1)
                );
                if len > 0 {
                    let shown = len.min(64);
                    assert_ne!(
                        &sealed[HEADER..HEADER + shown],
                        &data[..shown],
                        "ciphertext"
                    );
                }
                assert_eq!(
                    open(&key, "acme/doc/1", &sealed, piece + 13).unwrap(),
                    data,
                    "{len} by {piece}"
                );
            }
        }
    }

    #[test]
    fn altered_cut_reordered_extended_or_moved_objects_do_not_open() {
        let master = MasterKey::from_bytes(&[7; 32]).unwrap();
        let (key, _) = master.new_tenant_key(&acme());
        let data = plaintext(3 * CHUNK + 100);
        let sealed = seal(&key, "acme/doc/1", &data, CHUNK);
        let chunk = CHUNK + TAG;

        let mut flipped = sealed.clone();
        flipped[HEADER + 5] ^= 1;
        let cut_at_chunk = sealed[..HEADER + 2 * chunk].to_vec();
        let mut reordered = sealed[..HEADER].to_vec();
        reordered.extend_from_slice(&sealed[HEADER + chunk..HEADER + 2 * chunk]);
        reordered.extend_from_slice(&sealed[HEADER..HEADER + chunk]);
        reordered.extend_from_slice(&sealed[HEADER + 2 * chunk..]);
        let mut extended = sealed.clone();
        extended.extend_from_slice(&sealed[HEADER..HEADER + chunk]);
        for (what, bad) in [
            ("flipped", &flipped),
            ("cut at a chunk boundary", &cut_at_chunk),
            ("reordered", &reordered),
            ("extended", &extended),
        ] {
            assert_eq!(
                open(&key, "acme/doc/1", bad, CHUNK).unwrap_err(),
                EnvelopeError::Tampered,
                "{what}"
            );
        }
        // The same bytes under another object key: refused.
        assert!(open(&key, "acme/doc/2", &sealed, CHUNK).is_err());
    }

    #[test]
    fn a_tenant_key_opens_only_its_tenants_objects_and_only_under_its_master() {
        let master = MasterKey::from_bytes(&[7; 32]).unwrap();
        let (acme_key, wrapped) = master.new_tenant_key(&acme());
        let globex = TenantId::parse("globex").unwrap();
        let (globex_key, _) = master.new_tenant_key(&globex);
        let sealed = seal(&acme_key, "acme/doc/1", b"acme's secret", 100);
        assert!(open(&globex_key, "acme/doc/1", &sealed, 100).is_err());

        // Unwrapped again (as after a restart) it opens; as another tenant's, or under
        // another master, it does not exist.
        let again = master
            .unwrap_tenant_key(&acme(), acme_key.id(), &wrapped)
            .unwrap();
        assert_eq!(
            open(&again, "acme/doc/1", &sealed, 100).unwrap(),
            b"acme's secret"
        );
        assert!(
            master
                .unwrap_tenant_key(&globex, acme_key.id(), &wrapped)
                .is_err()
        );
        let other_master = MasterKey::from_bytes(&[8; 32]).unwrap();
        assert!(
            other_master
                .unwrap_tenant_key(&acme(), acme_key.id(), &wrapped)
                .is_err()
        );
        assert_eq!(
            MasterKey::from_bytes(&[1; 31]).unwrap_err(),
            EnvelopeError::KeyLength
        );
        assert_eq!(format!("{master:?}"), "MasterKey(..)", "never printed");
    }

    #[test]
    fn a_header_that_is_not_ours_is_refused() {
        assert_eq!(
            Header::parse(&[0; HEADER]).unwrap_err(),
            EnvelopeError::NotSealed
        );
        assert_eq!(
            Header::parse(b"GHE1").unwrap_err(),
            EnvelopeError::NotSealed
        );
    }
}

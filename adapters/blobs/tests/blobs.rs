//! Sealed objects in a real S3-protocol server (s3s-fs, started here) with tenant keys in a
//! real PostgreSQL: round trips of multipart sizes, nothing readable at rest, tampering
//! detected, size limits, another tenant's key, and crypto-shredding.

use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use gatehouse_adapter_blobs::sealed::{self, BlobError};
use gatehouse_adapter_blobs::{BlobStore, KeyError, KeyRing, MasterKey, S3Settings, object_key};
use gatehouse_core::TenantId;
use gatehouse_pgcluster::PgCluster;
use sqlx::postgres::PgPoolOptions;

const MARKER: &[u8] = b"ACME-CONFIDENTIAL-MARKER";

struct World {
    _dir: tempfile::TempDir,
    _cluster: PgCluster,
    s3_root: std::path::PathBuf,
    keys: KeyRing,
    store: BlobStore,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn world() -> World {
    let dir = gatehouse_pgcluster::scratch_dir().unwrap();
    let cluster = PgCluster::start(&dir.path().join("pg"), None).unwrap();
    let urls = cluster.provision("gatehouse").unwrap();
    let owner = PgPoolOptions::new()
        .max_connections(1)
        .connect(&urls.owner_url)
        .await
        .unwrap();
    gatehouse_schemas::migrate(&owner).await.unwrap();
    let app = PgPoolOptions::new()
        .max_connections(4)
        .connect(&urls.app_url)
        .await
        .unwrap();

    let s3_root = dir.path().join("s3");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let root = s3_root.clone();
    tokio::spawn(async move {
        gatehouse_adapter_blobs::local_s3::serve(
            &root,
            listener,
            "test-access",
            "test-secret",
            async {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
    });
    let store = BlobStore::new(&S3Settings {
        endpoint,
        region: "us-east-1".into(),
        bucket: "gatehouse-test".into(),
        access_key: "test-access".into(),
        secret_key: "test-secret".into(),
    });
    store.ensure_bucket().await.unwrap();
    World {
        _dir: dir,
        _cluster: cluster,
        s3_root,
        keys: KeyRing::new(MasterKey::from_bytes(&[9; 32]).unwrap(), app),
        store,
        _stop: stop,
    }
}

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// `total` bytes in 1 MiB pieces, with the marker at the start of each piece.
fn content(total: usize) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    let mut left = total;
    let mut n = 0u8;
    while left > 0 {
        let len = left.min(1 << 20);
        let mut piece: Vec<u8> = (0..len).map(|i| (i as u8) ^ n).collect();
        let marker = MARKER.len().min(len);
        piece[..marker].copy_from_slice(&MARKER[..marker]);
        pieces.push(Bytes::from(piece));
        left -= len;
        n = n.wrapping_add(1);
    }
    pieces
}

fn source(
    pieces: Vec<Bytes>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    futures_util::stream::iter(pieces.into_iter().map(Ok))
}

async fn read_back(w: &World, who: &TenantId, key: &str, sha: &str) -> Result<Vec<u8>, BlobError> {
    let mut stream = Box::pin(sealed::get(&w.keys, &w.store, who, key, sha).await?);
    let mut out = Vec::new();
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

fn files_containing(root: &Path, needle: &[u8]) -> usize {
    let mut found = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                found += 1;
            }
        }
    }
    found
}

fn stored_file(root: &Path, key: &str) -> std::path::PathBuf {
    root.join("gatehouse-test").join(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_sealed_per_tenant_streamed_and_shredded_with_their_key() {
    let w = world().await;
    let acme = tenant("acme");
    let globex = tenant("globex");

    // 20 MiB: three multipart parts of sealed chunks; and a small single-PUT object.
    for (document, size) in [("doc-big", 20 << 20), ("doc-small", 1000)] {
        let key = object_key(&acme, document, 1);
        let pieces = content(size);
        let expected: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
        let stored = sealed::put(&w.keys, &w.store, &acme, &key, source(pieces), 100 << 20)
            .await
            .unwrap();
        assert_eq!(stored.size, size as u64);
        let back = read_back(&w, &acme, &key, &stored.sha256).await.unwrap();
        assert!(back == expected, "{document} round trip");
    }
    assert_eq!(
        files_containing(&w.s3_root, MARKER),
        0,
        "only ciphertext at rest"
    );

    // Another tenant cannot use acme's key, even naming acme's object.
    let key = object_key(&acme, "doc-small", 1);
    let sha = {
        let stored = sealed::put(
            &w.keys,
            &w.store,
            &acme,
            &key,
            source(content(1000)),
            1 << 20,
        )
        .await
        .unwrap();
        stored.sha256
    };
    assert!(matches!(
        read_back(&w, &globex, &key, &sha).await,
        Err(BlobError::Key(KeyError::Gone))
    ));
    // A wrong recorded checksum is an error at the end of the stream.
    assert!(matches!(
        read_back(&w, &acme, &key, &"0".repeat(64)).await,
        Err(BlobError::Checksum)
    ));

    // A changed byte, written back through S3 itself (so the server's own checksums are
    // fresh), is detected by the envelope.
    let mut raw = Vec::new();
    let mut body = w.store.download(&key).await.unwrap();
    while let Some(piece) = body.next().await {
        raw.extend_from_slice(&piece.unwrap());
    }
    let middle = raw.len() / 2;
    raw[middle] ^= 0x40;
    let mut rewrite = w.store.upload(key.clone());
    rewrite.write(&raw).await.unwrap();
    rewrite.finish().await.unwrap();
    let tampered = read_back(&w, &acme, &key, &sha).await;
    assert!(
        matches!(tampered, Err(BlobError::Envelope(_))),
        "{tampered:?}"
    );

    // Over the limit: refused, and no object (or part) is left.
    let too_big = object_key(&acme, "doc-huge", 1);
    let refused = sealed::put(
        &w.keys,
        &w.store,
        &acme,
        &too_big,
        source(content(10 << 20)),
        9 << 20,
    )
    .await;
    assert!(matches!(refused, Err(BlobError::TooLarge(_))));
    assert!(!stored_file(&w.s3_root, &too_big).exists());

    // Crypto-shredding: once acme's keys are destroyed nothing of acme opens.
    let big = object_key(&acme, "doc-big", 1);
    assert!(w.keys.destroy(&acme).await.unwrap() >= 1);
    assert!(matches!(
        read_back(&w, &acme, &big, &sha).await,
        Err(BlobError::Key(KeyError::Gone))
    ));
}

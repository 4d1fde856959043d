//! An S3-compatible store on a local folder (s3s-fs), so that `gatehouse` runs with
//! nothing configured and tests talk to a real S3-protocol server. It speaks S3 over
//! HTTP with signature checks (one access key); the adapter treats it like any S3.

use std::future::Future;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

/// Serves the folder `root` as an S3 store on `listener` until `stop` completes.
///
/// # Errors
/// When `root` cannot be used.
pub async fn serve(
    root: &Path,
    listener: TcpListener,
    access_key: &str,
    secret_key: &str,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    gatehouse_core::secret_file::create_private_dir(root)?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
    let service = builder.build();
    let http = Builder::new(TokioExecutor::new());
    let mut stop = std::pin::pin!(stop);
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    tracing::warn!(target: "gatehouse::blobs", error = %e, "local S3: accept failed");
                    continue;
                }
            },
            () = stop.as_mut() => return Ok(()),
        };
        let connection = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

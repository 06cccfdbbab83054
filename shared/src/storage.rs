//! File storage behind one interface: a local directory (the default; shared by the
//! roles of one machine) or an S3-compatible bucket (`STORAGE_BACKEND=s3`, for more
//! than one machine). Keys are relative paths such as `videos/{id}.mp4`.
//!
//! Local files are read and written with tokio's file API directly (large chunks, no
//! extra copies); S3 goes through `object_store` (multipart uploads, ranged GETs).

use std::{path::PathBuf, pin::Pin, sync::Arc};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::{
    GetOptions, GetRange, ObjectStore, WriteMultipart, aws::AmazonS3Builder,
    path::Path as ObjectPath,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::config::{Config, StorageBackend};

/// A stream of file bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

#[derive(Clone)]
pub enum Storage {
    Local { root: PathBuf },
    S3 { store: Arc<dyn ObjectStore> },
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Local { root } => write!(f, "Storage::Local({})", root.display()),
            Storage::S3 { .. } => f.write_str("Storage::S3"),
        }
    }
}

fn io(e: object_store::Error) -> std::io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string())
        }
        other => std::io::Error::other(other.to_string()),
    }
}

/// Keys are made by the code, never by clients; this refuses anything path-like anyway.
fn checked(key: &str) -> std::io::Result<&str> {
    if key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad storage key `{key}`"),
        ));
    }
    Ok(key)
}

impl Storage {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        Ok(match &config.storage {
            StorageBackend::Local => Storage::Local {
                root: config.storage_dir.clone(),
            },
            StorageBackend::S3(s3) => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_access_key_id(&s3.access_key_id)
                    .with_secret_access_key(&s3.secret_access_key)
                    .with_client_options(
                        object_store::ClientOptions::new()
                            .with_timeout(config.storage_timeout)
                            .with_connect_timeout(
                                config
                                    .storage_timeout
                                    .min(std::time::Duration::from_secs(10)),
                            ),
                    );
                if let Some(endpoint) = &s3.endpoint {
                    b = b
                        .with_endpoint(endpoint)
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_virtual_hosted_style_request(false);
                }
                Storage::S3 {
                    store: Arc::new(b.build().map_err(|e| anyhow::anyhow!("S3 storage: {e}"))?),
                }
            }
        })
    }

    /// For local storage, the file's path (ffmpeg reads it in place).
    pub fn local_path(&self, key: &str) -> Option<PathBuf> {
        match self {
            Storage::Local { root } => checked(key).ok().map(|k| root.join(k)),
            Storage::S3 { .. } => None,
        }
    }

    /// Starts writing `key` (replaced when finished).
    pub async fn writer(&self, key: &str) -> std::io::Result<Writer> {
        let key = checked(key)?;
        match self {
            Storage::Local { root } => {
                let path = root.join(key);
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir).await?;
                }
                let tmp = path.with_extension(format!("{}.part", uuid::Uuid::new_v4().simple()));
                Ok(Writer(Some(Inner::Local {
                    file: tokio::fs::File::create(&tmp).await?,
                    tmp,
                    path,
                })))
            }
            Storage::S3 { store } => {
                let upload = store
                    .put_multipart(&ObjectPath::from(key))
                    .await
                    .map_err(io)?;
                Ok(Writer(Some(Inner::S3(
                    WriteMultipart::new_with_chunk_size(upload, 8 * 1024 * 1024),
                ))))
            }
        }
    }

    /// Removes the partial files (`*.part`) older than `age` under the local root:
    /// what a process killed mid-write left (a writer dropped in a live process cleans
    /// up after itself). Returns how many. On S3 an incomplete multipart upload holds no
    /// object; the bucket's lifecycle rule (`AbortIncompleteMultipartUpload`, see
    /// docs/operations.md) frees its parts.
    pub async fn sweep_parts(&self, age: std::time::Duration) -> std::io::Result<usize> {
        let Storage::Local { root } = self else {
            return Ok(0);
        };
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            fn walk(dir: &std::path::Path, age: std::time::Duration) -> std::io::Result<usize> {
                let mut removed = 0;
                let entries = match std::fs::read_dir(dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                    Err(e) => return Err(e),
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    let Ok(meta) = entry.metadata() else { continue };
                    if meta.is_dir() {
                        removed += walk(&path, age)?;
                    } else if path.extension().is_some_and(|e| e == "part")
                        && meta
                            .modified()
                            .ok()
                            .and_then(|m| m.elapsed().ok())
                            .is_some_and(|a| a >= age)
                        && std::fs::remove_file(&path).is_ok()
                    {
                        removed += 1;
                    }
                }
                Ok(removed)
            }
            walk(&root, age)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Writes a whole (small) object.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> std::io::Result<()> {
        let mut w = self.writer(key).await?;
        w.write(Bytes::from(bytes)).await?;
        w.finish().await
    }

    /// Reads a whole (small) object.
    pub async fn read(&self, key: &str) -> std::io::Result<Vec<u8>> {
        let key = checked(key)?;
        match self {
            Storage::Local { root } => tokio::fs::read(root.join(key)).await,
            Storage::S3 { store } => Ok(store
                .get(&ObjectPath::from(key))
                .await
                .map_err(io)?
                .bytes()
                .await
                .map_err(io)?
                .to_vec()),
        }
    }

    /// The object's size.
    pub async fn len(&self, key: &str) -> std::io::Result<u64> {
        let key = checked(key)?;
        match self {
            Storage::Local { root } => Ok(tokio::fs::metadata(root.join(key)).await?.len()),
            Storage::S3 { store } => Ok(store.head(&ObjectPath::from(key)).await.map_err(io)?.size),
        }
    }

    /// `count` bytes from `start`, as a stream (never the whole object in memory).
    pub async fn stream(&self, key: &str, start: u64, count: u64) -> std::io::Result<ByteStream> {
        let key = checked(key)?;
        match self {
            Storage::Local { root } => {
                let mut f = tokio::fs::File::open(root.join(key)).await?;
                f.seek(std::io::SeekFrom::Start(start)).await?;
                Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
                    f.take(count),
                    256 * 1024,
                )))
            }
            Storage::S3 { store } => {
                let opts = GetOptions {
                    range: Some(GetRange::Bounded(start..start + count)),
                    ..Default::default()
                };
                let res = store
                    .get_opts(&ObjectPath::from(key), opts)
                    .await
                    .map_err(io)?;
                Ok(Box::pin(res.into_stream().map_err(io)))
            }
        }
    }

    /// Removes an object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> std::io::Result<()> {
        let key = checked(key)?;
        let res = match self {
            Storage::Local { root } => tokio::fs::remove_file(root.join(key)).await,
            Storage::S3 { store } => store.delete(&ObjectPath::from(key)).await.map_err(io),
        };
        match res {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Copies an object into a local file.
    pub async fn download_to(&self, key: &str, path: &std::path::Path) -> std::io::Result<()> {
        let len = self.len(key).await?;
        let mut s = self.stream(key, 0, len).await?;
        let mut f = tokio::fs::File::create(path).await?;
        while let Some(chunk) = s.next().await {
            f.write_all(&chunk?).await?;
        }
        f.flush().await
    }

    /// Stores a local file under `key`.
    pub async fn upload_from(&self, path: &std::path::Path, key: &str) -> std::io::Result<()> {
        let mut w = self.writer(key).await?;
        let mut f = tokio::fs::File::open(path).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            w.write(Bytes::copy_from_slice(&buf[..n])).await?;
        }
        w.finish().await
    }
}

/// An object being written. Dropped before `finish` (an error, a cancelled request, a
/// client gone), it throws the partial object away: nothing half-written is left
/// behind on any path.
pub struct Writer(Option<Inner>);

enum Inner {
    Local {
        file: tokio::fs::File,
        tmp: PathBuf,
        path: PathBuf,
    },
    S3(WriteMultipart),
}

impl Writer {
    pub async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        match self.0.as_mut() {
            Some(Inner::Local { file, .. }) => file.write_all(&chunk).await,
            Some(Inner::S3(w)) => {
                w.wait_for_capacity(4).await.map_err(io)?;
                w.put(chunk);
                Ok(())
            }
            None => Err(std::io::Error::other("the writer was already closed")),
        }
    }

    /// Makes the object visible under its key.
    pub async fn finish(mut self) -> std::io::Result<()> {
        match self.0.take() {
            Some(Inner::Local {
                mut file,
                tmp,
                path,
            }) => {
                let done = async {
                    file.flush().await?;
                    file.sync_all().await?;
                    drop(file);
                    tokio::fs::rename(&tmp, &path).await
                }
                .await;
                if done.is_err() {
                    let _ = tokio::fs::remove_file(&tmp).await;
                }
                done
            }
            Some(Inner::S3(w)) => w.finish().await.map(|_| ()).map_err(io),
            None => Err(std::io::Error::other("the writer was already closed")),
        }
    }

    /// Throws the partial object away.
    pub async fn abort(mut self) {
        match self.0.take() {
            Some(Inner::Local { file, tmp, .. }) => {
                drop(file);
                let _ = tokio::fs::remove_file(tmp).await;
            }
            Some(Inner::S3(w)) => {
                let _ = w.abort().await;
            }
            None => {}
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        match self.0.take() {
            Some(Inner::Local { file, tmp, .. }) => {
                drop(file);
                let _ = std::fs::remove_file(tmp);
            }
            Some(Inner::S3(w)) => {
                // Aborting is a request to the store: done in the background.
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        let _ = w.abort().await;
                    });
                }
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Storage, checked};

    fn files(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_writer_dropped_unfinished_leaves_nothing() {
        let root = std::env::temp_dir().join(format!("wp-storage-{}", uuid::Uuid::new_v4()));
        let storage = Storage::Local { root: root.clone() };
        let mut w = storage.writer("videos/a.mp4").await.unwrap();
        w.write(bytes::Bytes::from_static(b"half a video"))
            .await
            .unwrap();
        assert_eq!(files(&root.join("videos")).len(), 1, "the part is there");
        // A cancelled upload: the future holding the writer is dropped.
        drop(w);
        assert!(
            files(&root.join("videos")).is_empty(),
            "{:?}",
            files(&root.join("videos"))
        );
        // A finished one stays.
        let mut w = storage.writer("videos/b.mp4").await.unwrap();
        w.write(bytes::Bytes::from_static(b"a video"))
            .await
            .unwrap();
        w.finish().await.unwrap();
        assert_eq!(files(&root.join("videos")), vec!["b.mp4".to_owned()]);
        let _ = std::fs::remove_dir_all(root);
    }

    #[tokio::test]
    async fn the_sweep_removes_only_old_parts() {
        let root = std::env::temp_dir().join(format!("wp-storage-{}", uuid::Uuid::new_v4()));
        let videos = root.join("videos");
        std::fs::create_dir_all(&videos).unwrap();
        let day = std::time::Duration::from_secs(24 * 3600);
        for (name, age) in [
            ("old.mp4.abc.part", 2 * day),
            ("young.mp4.def.part", std::time::Duration::ZERO),
            ("old.mp4", 2 * day),
        ] {
            let f = std::fs::File::create(videos.join(name)).unwrap();
            f.set_modified(std::time::SystemTime::now() - age).unwrap();
        }
        let storage = Storage::Local { root: root.clone() };
        assert_eq!(storage.sweep_parts(day).await.unwrap(), 1);
        let mut left = files(&videos);
        left.sort();
        assert_eq!(left, ["old.mp4", "young.mp4.def.part"]);
        let _ = std::fs::remove_dir_all(root);
    }

    #[test]
    fn keys_cannot_escape() {
        assert!(checked("videos/a.mp4").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a//b", "./a"] {
            assert!(checked(bad).is_err(), "{bad}");
        }
    }
}

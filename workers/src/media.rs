//! The `media` queue: probe an uploaded video with ffprobe (container, duration, a video
//! stream present), move an MP4/MOV's index (`moov`) to the front so players can start
//! before the whole file arrives (`ffmpeg -c copy -movflags +faststart`, no re-encode),
//! take a thumbnail, record size and SHA-256 of the final file, and mark the video
//! `ready`, or `failed` with the reason.
//!
//! Idempotent: only a `processing` video is worked on; every output is written beside
//! and renamed into place, so a re-run after a crash redoes the same steps.

use std::{path::Path, sync::Arc, time::Duration};

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use sha2::{Digest, Sha256};
use tokio::{io::AsyncReadExt, process::Command};
use wp_shared::jobs::PrepareMedia;

use crate::Ctx;

#[derive(Debug)]
struct Probe {
    format_name: String,
    duration: Option<f64>,
    has_video: bool,
}

/// What ffmpeg and ffprobe may open for an uploaded file: local files only (no
/// network, no pipes), and only the containers uploads are accepted as
/// (`sniff_video`): a file that talks a demuxer into fetching URLs or reading other
/// files (an HLS or concat playlist dressed as a video) is refused before it is read.
const INPUT_GUARD: [&str; 4] = [
    "-protocol_whitelist",
    "file",
    "-format_whitelist",
    "mov,matroska,avi,mpegts",
];

/// How long one probe or thumbnail may take, and one stream-copy pass (a remux of a
/// large file reads and writes it whole).
const QUICK_STEP: Duration = Duration::from_secs(60);
const COPY_STEP: Duration = Duration::from_secs(30 * 60);

/// What one media tool run may use: address space, open files; CPU seconds are the
/// step's time limit. A file crafted to make a decoder allocate without end, or spin,
/// is stopped by the kernel (SIGKILL / SIGXCPU) and fails its job alone.
const MEDIA_MEMORY_BYTES: u64 = 2 << 30;
const MEDIA_OPEN_FILES: u32 = 256;

/// `prlimit` (util-linux), which sets the limits and then runs the tool in its place;
/// without it the tools run unlimited (logged once).
fn prlimit() -> Option<&'static str> {
    static FOUND: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        let found = ["/usr/bin/prlimit", "/bin/prlimit"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        if found.is_none() {
            tracing::warn!("prlimit not found: ffmpeg and ffprobe run without resource limits");
        }
        found
    })
}

/// A media tool's command, under resource limits (`cpu`: CPU seconds), and killed if
/// the job is cancelled (its attempt timed out, the worker stopped) rather than left
/// running.
fn tool(program: &str, cpu: Duration) -> Command {
    let mut cmd = match prlimit() {
        Some(prlimit) => {
            let mut c = Command::new(prlimit);
            c.arg(format!("--as={MEDIA_MEMORY_BYTES}"))
                .arg(format!("--cpu={}", cpu.as_secs().max(1)))
                .arg(format!("--nofile={MEDIA_OPEN_FILES}"))
                .arg("--")
                .arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.kill_on_drop(true);
    cmd
}

/// Runs `cmd` for at most `limit`, collecting its output.
async fn output(cmd: &mut Command, limit: Duration) -> Result<std::process::Output, String> {
    match tokio::time::timeout(limit, cmd.output()).await {
        Ok(res) => res.map_err(|e| e.to_string()),
        Err(_) => Err(format!("took longer than {} s; stopped", limit.as_secs())),
    }
}

async fn probe(ffprobe: &str, path: &Path) -> Result<Probe, String> {
    let out = tokio::time::timeout(
        QUICK_STEP,
        tool(ffprobe, QUICK_STEP)
            .args(INPUT_GUARD)
            .args([
                "-v",
                "error",
                "-print_format",
                "json",
                "-show_format",
                "-show_streams",
            ])
            .arg(path)
            .output(),
    )
    .await
    .map_err(|_| {
        format!(
            "not a readable video: ffprobe took longer than {} s",
            QUICK_STEP.as_secs()
        )
    })?
    .map_err(|e| format!("cannot run ffprobe ({ffprobe}): {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "not a readable video: {}",
            err.trim().lines().last().unwrap_or("ffprobe failed")
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("ffprobe output: {e}"))?;
    Ok(Probe {
        format_name: v["format"]["format_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        duration: v["format"]["duration"]
            .as_str()
            .and_then(|d| d.parse().ok()),
        has_video: v["streams"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["codec_type"] == "video")),
    })
}

async fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        n_total += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), n_total))
}

async fn run(cmd: &mut Command, limit: Duration) -> Result<(), String> {
    let out = output(cmd, limit).await?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .trim()
            .lines()
            .last()
            .unwrap_or("failed")
            .to_owned())
    }
}

async fn fail(ctx: &Ctx, job: &PrepareMedia, reason: &str) -> Result<(), BoxDynError> {
    sqlx::query!(
        "UPDATE videos SET status = 'failed', failure_reason = $2 WHERE id = $1 AND status = 'processing'",
        job.video_id,
        reason
    )
    .execute(&ctx.db)
    .await?;
    tracing::warn!(video = %job.video_id, reason, "video preparation failed");
    Err(AbortError::new(std::io::Error::other(reason.to_owned())).into())
}

type Prepared = (Probe, String, u64, Option<String>);

/// Probes, prepares and measures the file; `Ok(Err(reason))` is a bad file (the video
/// fails), `Err` a passing fault (the job retries).
async fn prepare_file(
    ctx: &Ctx,
    job: &PrepareMedia,
    key: &str,
    local: Option<std::path::PathBuf>,
    work: &Path,
) -> Result<Result<Prepared, String>, BoxDynError> {
    let ext = Path::new(key)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("bin")
        .to_owned();
    let path = match &local {
        Some(p) => p.clone(),
        None => {
            let p = work.join(format!("source.{ext}"));
            ctx.storage.download_to(key, &p).await?;
            p
        }
    };
    let p = match probe(&ctx.config.ffprobe, &path).await {
        Ok(p) => p,
        Err(e) if e.starts_with("cannot run") => return Err(std::io::Error::other(e).into()),
        Err(e) => return Ok(Err(e)),
    };
    if !p.has_video {
        return Ok(Err("the file has no video stream".to_owned()));
    }
    // Index at the front for MP4 and QuickTime (a stream copy: fast, lossless).
    if p.format_name.contains("mp4") || p.format_name.contains("mov") {
        let out = work.join(format!("faststart.{ext}"));
        if let Err(e) = run(
            tool(&ctx.config.ffmpeg, COPY_STEP)
                .args(["-y", "-v", "error"])
                .args(INPUT_GUARD)
                .arg("-i")
                .arg(&path)
                .args(["-map", "0", "-c", "copy", "-movflags", "+faststart"])
                .arg(&out),
            COPY_STEP,
        )
        .await
        {
            return Ok(Err(format!("cannot prepare the file for streaming: {e}")));
        }
        match &local {
            // Same filesystem as the work dir or not: copy then rename beside, atomic.
            Some(dest) => {
                let beside = dest.with_extension(format!("{ext}.faststart"));
                tokio::fs::copy(&out, &beside).await?;
                tokio::fs::rename(&beside, dest).await?;
            }
            None => ctx.storage.upload_from(&out, key).await?,
        }
        if local.is_none() {
            tokio::fs::rename(&out, &path).await?;
        }
    }
    // A thumbnail from one second in (or the middle of a shorter video); optional.
    let at = p.duration.map(|d| (d / 2.0).min(1.0)).unwrap_or(0.0);
    let thumb = work.join("thumb.jpg");
    let thumb_key = format!("thumbnails/{}.jpg", job.video_id);
    let thumb_ok = run(
        tool(&ctx.config.ffmpeg, QUICK_STEP)
            .args(["-y", "-v", "error", "-ss", &format!("{at:.3}")])
            .args(INPUT_GUARD)
            .arg("-i")
            .arg(&path)
            .args(["-frames:v", "1", "-vf", "scale=320:-2"])
            .arg(&thumb),
        QUICK_STEP,
    )
    .await
    .is_ok()
        && ctx.storage.upload_from(&thumb, &thumb_key).await.is_ok();
    let (sha, size) = sha256_file(&path).await?;
    Ok(Ok((p, sha, size, thumb_ok.then_some(thumb_key))))
}

pub async fn prepare(
    job: PrepareMedia,
    ctx: Data<Arc<Ctx>>,
    _attempt: Attempt,
) -> Result<(), BoxDynError> {
    let Some(v) = sqlx::query!(
        "SELECT storage_key, container FROM videos WHERE id = $1 AND status = 'processing'",
        job.video_id
    )
    .fetch_optional(&ctx.db)
    .await?
    else {
        return Ok(()); // done before, failed, or deleted
    };
    // ffmpeg needs a local file: the stored one itself, or a copy of an S3 object.
    let local = ctx.storage.local_path(&v.storage_key);
    let work = std::env::temp_dir().join(format!("wp-media-{}", job.video_id));
    tokio::fs::create_dir_all(&work).await?;
    let result = prepare_file(&ctx, &job, &v.storage_key, local, &work).await;
    let _ = tokio::fs::remove_dir_all(&work).await;
    let (p, sha, size, thumb_key) = match result? {
        Ok(done) => done,
        Err(reason) => return fail(&ctx, &job, &reason).await,
    };
    let container = if p.format_name.contains("webm") && v.container == "webm" {
        "webm".to_owned()
    } else {
        v.container
    };
    sqlx::query!(
        "UPDATE videos SET status = 'ready', failure_reason = NULL, duration_seconds = $2, size_bytes = $3,
                sha256 = $4, thumbnail_key = $5, container = $6, file_updated_at = now()
         WHERE id = $1 AND status = 'processing'",
        job.video_id,
        p.duration,
        i64::try_from(size).unwrap_or(i64::MAX),
        sha,
        thumb_key,
        container,
    )
    .execute(&ctx.db)
    .await?;
    tracing::info!(video = %job.video_id, duration = ?p.duration, size, "video ready");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits reach the tool itself: a shell run as a "media tool" reports them.
    #[tokio::test]
    async fn media_tools_run_under_resource_limits() {
        assert!(
            prlimit().is_some(),
            "prlimit (util-linux) is installed here"
        );
        let out = output(
            tool("sh", Duration::from_secs(7)).args(["-c", "ulimit -v; ulimit -t; ulimit -n"]),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                (MEDIA_MEMORY_BYTES / 1024).to_string().as_str(),
                "7",
                MEDIA_OPEN_FILES.to_string().as_str()
            ],
            "{text}"
        );
        // And the allocation limit bites: asking for more memory than allowed fails.
        let out = output(
            tool("python3", Duration::from_secs(10)).args(["-c", "b = bytearray(3 * 1024 ** 3)"]),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert!(
            !out.status.success(),
            "a 3 GiB allocation under a 2 GiB limit"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("MemoryError"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

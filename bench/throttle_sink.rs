//! An SMTP sink for `bench/domain_throttle.sh`: accepts every message, like Postfix's smtp-sink,
//! except that it answers `421 4.7.0` (and closes the connection, as RFC 5321 says a 421 does)
//! to every other recipient at one domain, as a receiving domain that rate-limits us does.
//! smtp-sink cannot refuse by domain, hence this.
//!
//! Usage: `throttle_sink ADDRESS SLOW_DOMAIN` (SLOW_DOMAIN `-`: refuse nobody).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:2525".into());
    let slow = args
        .next()
        .filter(|d| d != "-")
        .map(|d| format!("@{}>", d.to_ascii_lowercase()));
    let listener = TcpListener::bind(&address).await?;
    let seen = Arc::new(AtomicU64::new(0));
    loop {
        let (stream, _) = listener.accept().await?;
        let (slow, seen) = (slow.clone(), seen.clone());
        tokio::spawn(async move {
            let _ = session(stream, slow.as_deref(), &seen).await;
        });
    }
}

async fn session(stream: TcpStream, slow: Option<&str>, seen: &AtomicU64) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 * 1024, read);
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = line.to_ascii_lowercase();
        let reply: &[u8] = if command.starts_with(b"ehlo") {
            b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        } else if command.starts_with(b"rcpt") {
            let refused = slow.is_some_and(|slow| {
                command.windows(slow.len()).any(|w| w == slow.as_bytes())
                    && seen.fetch_add(1, Ordering::Relaxed) % 2 == 0
            });
            if refused {
                write
                    .write_all(b"421 4.7.0 Too many messages, slow down; closing connection\r\n")
                    .await?;
                return Ok(());
            }
            b"250 2.1.5 Ok\r\n"
        } else if command.starts_with(b"data") {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            loop {
                line.clear();
                if read.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(());
                }
                if line == b".\r\n" {
                    break;
                }
            }
            b"250 2.0.0 Ok: queued\r\n"
        } else if command.starts_with(b"quit") {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            // HELO, MAIL, RSET, NOOP.
            b"250 2.0.0 Ok\r\n"
        };
        write.write_all(reply).await?;
    }
}

//! Connections: the accept loop with its cap, and one HTTP/1.1 connection
//! served by hyper with a header read timeout. Since hyper 1.x restarts that
//! timeout when a keep-alive connection waits for its next request, it is
//! the idle timeout too (`platform/tests/limits.rs` holds it to that). Each
//! connection is a small task, not a thread, so idle or slow clients cost
//! memory, not workers.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::App;

/// Accepts until shutdown.
pub(super) async fn accept(listener: TcpListener, router: axum::Router, app: Arc<App>) {
    // One connection over the cap is closed as soon as it is accepted, so it
    // waits in no queue and holds nothing.
    let slots = Arc::new(Semaphore::new(app.limits.max_connections));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = super::stopped(&app) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            // Out of file descriptors or a connection reset before accept:
            // wait a moment rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            continue;
        };
        tokio::spawn(serve(stream, router.clone(), Arc::clone(&app), permit));
    }
}

/// Serves one connection until the client closes it, a timeout ends it, or
/// the server shuts down (then the answer in progress is finished first).
async fn serve(
    stream: TcpStream,
    router: axum::Router,
    app: Arc<App>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(app.limits.header_timeout)
        // A client may shut its write side once the request is sent and
        // still wait for the answer; some do, and hyper would drop it.
        .half_close(true)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = super::stopped(&app) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

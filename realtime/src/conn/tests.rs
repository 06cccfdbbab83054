//! The socket pump's unit tests: write deadlines, round trips, kills, token buckets.

mod write_deadline_tests {
    use std::{
        pin::Pin,
        task::{Context, Poll},
    };

    use crate::conn::*;

    /// A socket whose peer stopped reading: it never takes another byte.
    struct Stuck;

    impl Stream for Stuck {
        type Item = Result<Message, axum::Error>;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Pending
        }
    }

    impl Sink<Message> for Stuck {
        type Error = std::io::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
        fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), Self::Error> {
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Pending
        }
    }

    #[test]
    fn round_trips_come_from_our_pings_and_keep_the_longest_recent_one() {
        let mut m = RttMeter::new();
        let ping = m.ping();
        assert_eq!(m.pong(b"hello"), None, "not a ping of ours");
        assert_eq!(m.pong(&u64::MAX.to_be_bytes()), None, "from the future");
        let rtt = m.pong(&ping).expect("measured");
        assert!((1..1_000).contains(&rtt), "{rtt}");
        // The longest of the last four: an old slow one ages out.
        m.samples = [500, 10, 10, 10];
        m.next = 4;
        assert_eq!(m.pong(&m.ping()), Some(10));
    }

    #[tokio::test]
    async fn a_socket_that_takes_nothing_is_given_up_after_the_deadline() {
        let deadline = std::time::Duration::from_millis(100);
        let (_tx, mut rx) = mpsc::channel(4);
        let started = std::time::Instant::now();
        assert!(!write_queued_by(deadline, &mut Stuck, "frame".into(), &mut rx).await);
        assert!(started.elapsed() >= deadline);
        let started = std::time::Instant::now();
        assert!(!send_close_by(deadline, &mut Stuck, "slow_consumer", "Too slow.").await);
        assert!(started.elapsed() >= deadline);
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }
}

mod pump_tests {
    use std::{
        pin::Pin,
        sync::{Arc, Mutex},
        task::{Context, Poll},
    };

    use crate::conn::*;

    /// What happened, in order: frames the node wrote, and the handler's end.
    type Log = Arc<Mutex<Vec<String>>>;

    /// A client socket: what the test sends comes in; what the node writes goes to the log.
    struct Client {
        incoming: mpsc::UnboundedReceiver<Result<Message, axum::Error>>,
        log: Log,
    }

    impl Stream for Client {
        type Item = Result<Message, axum::Error>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_recv(cx)
        }
    }

    impl Sink<Message> for Client {
        type Error = std::io::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn start_send(self: Pin<&mut Self>, msg: Message) -> Result<(), Self::Error> {
            let entry = match msg {
                Message::Text(t) => format!("text {t}"),
                Message::Close(Some(c)) => format!("close {}", c.code),
                other => format!("{other:?}"),
            };
            self.log.lock().unwrap().push(entry);
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    struct NoRenewal;

    impl Renewal for NoRenewal {
        fn expires_at(&self) -> i64 {
            i64::MAX
        }
        async fn renew(&mut self, _: &str) -> Frame {
            err("invalid_token", "No.")
        }
    }

    /// Stands for what a handler holds while it waits (a transaction, a row lock): its
    /// release is logged.
    struct Held(Log);

    impl Drop for Held {
        fn drop(&mut self) {
            self.0.lock().unwrap().push("handler dropped".into());
        }
    }

    /// A handler that never finishes (a query stuck on a lock), holding [`Held`].
    struct Stuck(Log);

    impl Handler for Stuck {
        fn on_text(&mut self, _: &str, _: i64) -> impl Future<Output = Vec<Frame>> + Send {
            self.0.lock().unwrap().push("handling".into());
            let held = Held(self.0.clone());
            async move {
                std::future::pending::<()>().await;
                drop(held);
                Vec::new()
            }
        }
    }

    #[tokio::test]
    async fn a_kill_during_a_frame_drops_its_handler_before_the_socket_closes() {
        let log = Log::default();
        let (to_node, incoming) = mpsc::unbounded_channel();
        let mut socket = Client {
            incoming,
            log: log.clone(),
        };
        let (_queue, mut rx) = mpsc::channel(4);
        let kill = Kill::default();
        let stats = crate::hub::Stats::default();
        let (mut lease, mut handler) = (NoRenewal, Stuck(log.clone()));
        to_node
            .send(Ok(Message::Text(r#"{"type":"chat","data":{}}"#.into())))
            .unwrap();
        let pumping = pump(
            &mut socket,
            &mut rx,
            &kill,
            |_| "You were removed.",
            &mut lease,
            &mut handler,
            &stats,
            None,
        );
        tokio::pin!(pumping);
        // One turn: the frame is taken and its handler waits.
        assert!(futures::poll!(&mut pumping).is_pending());
        assert_eq!(*log.lock().unwrap(), ["handling"]);
        kill.kill("kicked");
        // The client never answers the close: the pump returns without lingering.
        assert_eq!(pumping.await, Ended::Closed);
        let log = log.lock().unwrap().clone();
        assert_eq!(log.len(), 4, "{log:?}");
        assert_eq!(
            log[1], "handler dropped",
            "before anything is written: {log:?}"
        );
        assert!(
            log[2].starts_with("text ") && log[2].contains("kicked"),
            "{log:?}"
        );
        assert_eq!(log[3], "close 4003");
    }
}

mod buckets {
    use crate::conn::Bucket;
    use std::time::{Duration, Instant};

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new_at(10.0, 2.0, t0);
        assert!(b.take_at(t0));
        assert!(b.take_at(t0));
        assert!(!b.take_at(t0), "the burst is 2");
        // 10 a second: a token every 100 ms, never more than the burst.
        assert!(!b.take_at(t0 + Duration::from_millis(99)));
        assert!(b.take_at(t0 + Duration::from_millis(100)));
        assert!(!b.take_at(t0 + Duration::from_millis(100)));
        let later = t0 + Duration::from_secs(60);
        assert!(b.take_at(later));
        assert!(b.take_at(later));
        assert!(
            !b.take_at(later),
            "an idle minute still refills only up to the burst"
        );
    }
}

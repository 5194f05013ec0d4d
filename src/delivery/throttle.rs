//! Per-domain throttling that adapts. A receiving domain that answers "slow down" (a 4xx reply
//! to its recipient or to the message: 421 "too many connections", 451 "rate limited", a
//! greylisting 450) gets a pace of its own: a rate and a number of mails in flight, halved at
//! each such answer and raised again with each mail it accepts, until it is back to full speed
//! and forgotten. Every other domain goes on at the worker's full speed.
//!
//! A mail to a slowed domain that may not go yet is not waited for (that would hold one of the
//! worker's connections idle while the rest of the digest waits behind it): it goes back to the
//! queue, due at a slot of the domain's pace reserved for it, and the attempt does not count.
//! When it comes back at that slot it goes, ahead of that domain's mail claimed meanwhile: slots
//! are handed out in order, so a domain's mail keeps its order and no mail is put off forever.
//!
//! The pace lives in the worker's memory. Several workers (on one PostgreSQL) each keep their
//! own, so a domain sees up to their sum; each of them slows down at its answers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::locked;
use crate::domain::SmtpStage;
use crate::email::SendError;

/// The rate of a domain at its first "slow down", in mails per second.
const FIRST_RATE: f64 = 5.0;
/// The slowest a domain is sent to: one mail a minute.
const MIN_RATE: f64 = 1.0 / 60.0;
/// Each accepted mail raises the rate by this much (mails per second): a domain that accepts
/// everything is back to full speed within seconds, one that refuses every other mail settles
/// near two mails a second.
const RATE_STEP: f64 = 1.0;
/// At this rate, with all its connections back, a domain is free of its pace.
const FREE_RATE: f64 = 50.0;
/// Reservations older than this are forgotten (their mail was taken by another worker, or its
/// digest cancelled).
const FORGET_RESERVATIONS_AFTER: Duration = Duration::from_secs(600);

/// What the answer to a mail says about its domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feedback {
    /// The mail was accepted.
    Accepted,
    /// A temporary refusal of this recipient or this message: the domain asks us to slow down.
    SlowDown,
    /// Anything else (a permanent refusal, a problem with the relay or with us).
    Neutral,
}

impl Feedback {
    /// A 4xx answer to RCPT TO or to the message is about the recipient's domain. A failure at
    /// connect time or at MAIL FROM is about the relay or us, and a connection that dropped
    /// without an answer proves nothing about the domain: those are the worker's retries' job.
    pub(super) fn of(result: &Result<(), SendError>) -> Feedback {
        match result {
            Ok(()) => Feedback::Accepted,
            Err(e)
                if !e.permanent
                    && e.code.is_some_and(|code| (400..500).contains(&code))
                    && matches!(e.stage, SmtpStage::RcptTo | SmtpStage::Data) =>
            {
                Feedback::SlowDown
            }
            Err(_) => Feedback::Neutral,
        }
    }
}

/// Whether a mail may go now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    Go(Ticket),
    /// Not now: due again at this slot, reserved for it.
    Later(Instant),
}

/// A mail that went, for [`Throttle::settle`].
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Ticket {
    /// Counted in its domain's mails in flight.
    counted: bool,
    started: Instant,
}

/// The pace of one slowed domain.
#[derive(Debug)]
struct Pace {
    /// Mails per second.
    rate: f64,
    /// Mails in flight at most.
    concurrency: usize,
    in_flight: usize,
    /// The first free slot: every slot before it is taken or reserved.
    next_slot: Instant,
    /// When it was last slowed: answers to mails sent before then were already heard.
    slowed_at: Instant,
    /// Accepted mails since its concurrency last changed.
    accepted: usize,
}

impl Pace {
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }

    fn slow_down(&mut self, now: Instant) {
        self.rate = (self.rate / 2.0).max(MIN_RATE);
        self.concurrency = (self.concurrency / 2).max(1);
        self.accepted = 0;
        self.slowed_at = now;
        // A pause of one interval before anything new goes.
        self.next_slot = self.next_slot.max(now + self.interval());
    }

    fn speed_up(&mut self, full_concurrency: usize) {
        self.rate += RATE_STEP;
        self.accepted += 1;
        if self.accepted >= self.concurrency && self.concurrency < full_concurrency {
            self.concurrency += 1;
            self.accepted = 0;
        }
    }

    fn is_free(&self, full_concurrency: usize) -> bool {
        self.rate >= FREE_RATE && self.concurrency >= full_concurrency && self.in_flight == 0
    }

    /// Takes the first free slot (not earlier than `now`).
    fn reserve(&mut self, now: Instant) -> Instant {
        let slot = self.next_slot.max(now);
        self.next_slot = slot + self.interval();
        slot
    }
}

#[derive(Default)]
struct State {
    /// Slowed domains, by lowercase name.
    domains: HashMap<String, Pace>,
    /// Deliveries put off to a slot of their domain's pace: when they come back, they go.
    reserved: HashMap<i64, Instant>,
    pruned_at: Option<Instant>,
}

/// The paces of the domains that asked this worker to slow down.
pub(super) struct Throttle {
    state: std::sync::Mutex<State>,
    full_concurrency: usize,
}

impl Throttle {
    pub(super) fn new(full_concurrency: usize) -> Throttle {
        Throttle {
            state: std::sync::Mutex::default(),
            full_concurrency: full_concurrency.max(1),
        }
    }

    /// Whether delivery `id` to `domain` may go now.
    pub(super) fn admit(&self, id: i64, domain: &str, now: Instant) -> Admission {
        let mut state = locked(&self.state);
        let untracked = Admission::Go(Ticket {
            counted: false,
            started: now,
        });
        if state.domains.is_empty() && state.reserved.is_empty() {
            return untracked;
        }
        let had_slot = state.reserved.remove(&id).is_some();
        let Some(pace) = state.domains.get_mut(&domain.to_ascii_lowercase()) else {
            return untracked;
        };
        if pace.in_flight >= pace.concurrency {
            // Its turn (or its slot) came, but the domain's connections are busy: soon after.
            let slot = if had_slot {
                now + pace.interval()
            } else {
                pace.reserve(now + pace.interval())
            };
            state.reserved.insert(id, slot);
            return Admission::Later(slot);
        }
        if had_slot || pace.next_slot <= now {
            if !had_slot {
                pace.reserve(now);
            }
            pace.in_flight += 1;
            return Admission::Go(Ticket {
                counted: true,
                started: now,
            });
        }
        let slot = pace.reserve(now);
        state.reserved.insert(id, slot);
        self.prune(&mut state, now);
        Admission::Later(slot)
    }

    /// Hears the answer to a mail that went. For [`Feedback::SlowDown`], the slot reserved for
    /// its next try.
    pub(super) fn settle(
        &self,
        ticket: Ticket,
        id: i64,
        domain: &str,
        feedback: Feedback,
        now: Instant,
    ) -> Option<Instant> {
        let mut state = locked(&self.state);
        let key = domain.to_ascii_lowercase();
        if ticket.counted
            && let Some(pace) = state.domains.get_mut(&key)
        {
            pace.in_flight = pace.in_flight.saturating_sub(1);
        }
        match feedback {
            Feedback::Accepted => {
                if let Some(pace) = state.domains.get_mut(&key) {
                    pace.speed_up(self.full_concurrency);
                    if pace.is_free(self.full_concurrency) {
                        state.domains.remove(&key);
                        tracing::info!(domain = key, "a receiving domain is back to full speed");
                    }
                }
                None
            }
            Feedback::SlowDown => {
                let full = self.full_concurrency;
                let pace = state.domains.entry(key.clone()).or_insert_with(|| Pace {
                    // Both halved just below.
                    rate: FIRST_RATE * 2.0,
                    concurrency: full,
                    in_flight: 0,
                    next_slot: now,
                    slowed_at: ticket.started,
                    accepted: 0,
                });
                // Mails that went before the last slow-down were sent at the old pace: their
                // answers say nothing new.
                if ticket.started >= pace.slowed_at {
                    pace.slow_down(now);
                    tracing::warn!(
                        domain = key,
                        rate_per_second = pace.rate,
                        concurrency = pace.concurrency,
                        "a receiving domain asked us to slow down"
                    );
                }
                let slot = pace.reserve(now);
                state.reserved.insert(id, slot);
                Some(slot)
            }
            Feedback::Neutral => None,
        }
    }

    /// A mail admitted that did not go after all (its digest paused, the worker stopping).
    pub(super) fn release(&self, ticket: Ticket, domain: &str) {
        if ticket.counted
            && let Some(pace) = locked(&self.state)
                .domains
                .get_mut(&domain.to_ascii_lowercase())
        {
            pace.in_flight = pace.in_flight.saturating_sub(1);
        }
    }

    /// The rate of a slowed domain, in mails per second (None: at full speed).
    #[cfg(test)]
    pub(super) fn rate_of(&self, domain: &str) -> Option<f64> {
        locked(&self.state)
            .domains
            .get(domain)
            .map(|pace| pace.rate)
    }

    fn prune(&self, state: &mut State, now: Instant) {
        if state
            .pruned_at
            .is_some_and(|at| now.duration_since(at) < FORGET_RESERVATIONS_AFTER)
        {
            return;
        }
        state.pruned_at = Some(now);
        state
            .reserved
            .retain(|_, slot| now.saturating_duration_since(*slot) < FORGET_RESERVATIONS_AFTER);
    }
}

/// The domain of an address (what follows its last `@`).
pub(super) fn domain_of(address: &str) -> &str {
    address
        .rsplit_once('@')
        .map_or(address, |(_, domain)| domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn go(admission: Admission) -> Ticket {
        match admission {
            Admission::Go(ticket) => ticket,
            Admission::Later(slot) => panic!("put off to {slot:?}"),
        }
    }

    fn later(admission: Admission) -> Instant {
        match admission {
            Admission::Later(slot) => slot,
            Admission::Go(_) => panic!("admitted"),
        }
    }

    #[test]
    fn every_domain_goes_until_one_asks_to_slow_down() {
        let throttle = Throttle::new(8);
        let now = Instant::now();
        for id in 0..100 {
            let ticket = go(throttle.admit(id, "example.org", now));
            assert!(!ticket.counted);
            throttle.settle(ticket, id, "example.org", Feedback::Accepted, now);
        }
        assert_eq!(throttle.rate_of("example.org"), None);
    }

    #[test]
    fn a_slowed_domain_gets_slots_in_order_and_others_go_on() {
        let throttle = Throttle::new(8);
        let t0 = Instant::now();
        let ticket = go(throttle.admit(1, "slow.example", t0));
        let retry = throttle.settle(ticket, 1, "Slow.Example", Feedback::SlowDown, t0);
        assert_eq!(throttle.rate_of("slow.example"), Some(FIRST_RATE));
        let interval = Duration::from_secs_f64(1.0 / FIRST_RATE);
        // The refused mail's next try waits out the pause; the rest follow one interval apart.
        assert_eq!(retry, Some(t0 + interval));
        let slots: Vec<Instant> = (2..6)
            .map(|id| later(throttle.admit(id, "slow.example", t0)))
            .collect();
        for (n, slot) in slots.iter().enumerate() {
            assert_eq!(*slot, t0 + interval * (n as u32 + 2));
        }
        // Other domains are not held back.
        go(throttle.admit(100, "example.org", t0));
        // A mail that comes back at its slot goes, though later mail reserved slots after it.
        let ticket = go(throttle.admit(3, "slow.example", slots[1]));
        assert!(ticket.counted);
        // One claimed meanwhile, without a slot, waits behind all of them.
        assert_eq!(
            later(throttle.admit(7, "slow.example", slots[1])),
            t0 + interval * 6
        );
    }

    #[test]
    fn it_backs_off_at_each_answer_and_recovers_on_success() {
        let throttle = Throttle::new(8);
        let mut now = Instant::now();
        let ticket = go(throttle.admit(1, "slow.example", now));
        throttle.settle(ticket, 1, "slow.example", Feedback::SlowDown, now);
        // A second refusal of a mail sent after the first slows it further.
        now += Duration::from_secs(1);
        let ticket = go(throttle.admit(1, "slow.example", now));
        throttle.settle(ticket, 1, "slow.example", Feedback::SlowDown, now);
        assert_eq!(throttle.rate_of("slow.example"), Some(FIRST_RATE / 2.0));
        // Accepted mail raises the rate until the domain is free again.
        let mut id = 10;
        while throttle.rate_of("slow.example").is_some() {
            now += Duration::from_secs(1);
            id += 1;
            let ticket = go(throttle.admit(id, "slow.example", now));
            throttle.settle(ticket, id, "slow.example", Feedback::Accepted, now);
            assert!(id < 100, "never recovered");
        }
        let ticket = go(throttle.admit(id + 1, "slow.example", now));
        assert!(!ticket.counted, "back to full speed");
    }

    #[test]
    fn answers_to_mail_sent_before_a_slow_down_do_not_slow_it_again() {
        let throttle = Throttle::new(8);
        let t0 = Instant::now();
        let tickets: Vec<Ticket> = (1..=4)
            .map(|id| go(throttle.admit(id, "slow.example", t0)))
            .collect();
        let later_on = t0 + Duration::from_millis(5);
        for (id, ticket) in (1..=4).zip(tickets) {
            throttle.settle(ticket, id, "slow.example", Feedback::SlowDown, later_on);
        }
        assert_eq!(throttle.rate_of("slow.example"), Some(FIRST_RATE));
    }

    #[test]
    fn a_slowed_domain_has_few_mails_in_flight() {
        let throttle = Throttle::new(2);
        let t0 = Instant::now();
        let ticket = go(throttle.admit(1, "slow.example", t0));
        throttle.settle(ticket, 1, "slow.example", Feedback::SlowDown, t0);
        let slot = later(throttle.admit(2, "slow.example", t0));
        let _in_flight = go(throttle.admit(2, "slow.example", slot));
        // Concurrency is 1 now: the next one's slot comes while the first is out.
        let slot3 = later(throttle.admit(3, "slow.example", t0));
        assert!(matches!(
            throttle.admit(3, "slow.example", slot3),
            Admission::Later(_)
        ));
    }

    #[test]
    fn feedback_reads_the_stage_and_the_code() {
        let refusal = |stage, code: u16| {
            Err(SendError {
                stage,
                permanent: code >= 500,
                code: Some(code),
                message: format!("{code} try later"),
            })
        };
        assert_eq!(Feedback::of(&Ok(())), Feedback::Accepted);
        assert_eq!(
            Feedback::of(&refusal(SmtpStage::RcptTo, 421)),
            Feedback::SlowDown
        );
        assert_eq!(
            Feedback::of(&refusal(SmtpStage::Data, 451)),
            Feedback::SlowDown
        );
        assert_eq!(
            Feedback::of(&refusal(SmtpStage::RcptTo, 550)),
            Feedback::Neutral
        );
        assert_eq!(
            Feedback::of(&refusal(SmtpStage::MailFrom, 421)),
            Feedback::Neutral,
            "about us or the relay"
        );
        assert_eq!(
            Feedback::of(&refusal(SmtpStage::Connect, 421)),
            Feedback::Neutral
        );
        let dropped = Err(SendError {
            stage: SmtpStage::RcptTo,
            permanent: false,
            code: None,
            message: "connection dropped".into(),
        });
        assert_eq!(Feedback::of(&dropped), Feedback::Neutral);
    }
}

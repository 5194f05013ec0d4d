//! Per-domain throttling against a real SMTP server: a receiving domain that answers 421 to
//! part of its mail is slowed on its own, with the worker's default pace settings, while the
//! rest of the digest goes out; mail put off for the domain's pace spends no attempt.

use std::time::Duration;

use diesel::prelude::*;
use newsletter::db::schema::{deliveries::dsl as d, subscribers::dsl as s};

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn a_domain_that_answers_421_is_slowed_alone_and_its_mail_still_arrives() {
    let app = spawn_app_with(|s| s.delivery.concurrency = 4).await;
    let token = app.staff_token();
    app.smtp.refuse_every_nth_at(
        "slow.example",
        3,
        421,
        "4.7.0 Too many messages from your IP, slow down",
    );
    // The two domains' readers alternate in the queue.
    let slow: Vec<String> = (0..24)
        .map(|i| format!("patient{i}@slow.example"))
        .collect();
    let others: Vec<String> = (0..40).map(|i| format!("reader{i}@example.org")).collect();
    let mut people = Vec::new();
    for (n, other) in others.iter().enumerate() {
        people.push((other.as_str(), None));
        if let Some(patient) = slow.get(n) {
            people.push((patient.as_str(), None));
        }
    }
    app.seed_people(&people);
    let digest = app.queued_digest(&token).await;

    // Everyone elsewhere gets the digest while slow.example is still being paced.
    for other in &others {
        let got = app.smtp.wait_for(other, 1).await;
        assert_eq!(got.len(), 1, "{other} got the digest");
    }
    let all_others_in = std::time::Instant::now();

    let progress = app.wait_until_sent(&token, digest).await;
    let log = app.smtp.rcpts_at("slow.example");
    let last_slow = log.iter().map(|(_, at, _)| *at).max().unwrap();
    assert!(
        last_slow > all_others_in,
        "slow.example was still being sent to when everyone else had the digest"
    );

    // After its first 421 the domain gets at most 5 mails a second (and fewer after each
    // further 421), plus what was already on its way; without a pace of its own, all of its
    // two dozen mails are tried within milliseconds.
    let first_refusal = log.iter().find(|(_, _, refused)| *refused).unwrap().1;
    let next_second = log
        .iter()
        .filter(|(_, at, _)| *at > first_refusal && *at <= first_refusal + Duration::from_secs(1))
        .count();
    assert!(
        next_second <= 10,
        "{next_second} tries at slow.example in the second after its first 421"
    );

    // In the end everyone there has it, or ran out of tries that each met a 421; a mail put off
    // for the pace is no try: each delivery's attempts are its RCPTs at the server.
    let max_attempts = app.settings.delivery.max_attempts;
    let mut arrived = 0;
    for patient in &slow {
        let tries = log.iter().filter(|(to, ..)| to == patient).count() as i32;
        let email = patient.clone();
        let (status, attempts): (String, i32) = app.query(move |c| {
            d::deliveries
                .inner_join(s::subscribers)
                .filter(s::email.eq(email))
                .select((d::status, d::attempts))
                .first(c)
        });
        assert_eq!(attempts, tries, "{patient}: attempts are tries");
        match status.as_str() {
            "sent" => {
                arrived += 1;
                assert_eq!(app.smtp.messages_to(patient).len(), 1, "{patient}");
            }
            "failed" => assert_eq!(attempts, max_attempts, "{patient} failed early"),
            other => panic!("{patient}: {other}"),
        }
    }
    assert!(
        arrived >= 20,
        "only {arrived} of 24 arrived at slow.example"
    );
    assert_eq!(progress["status"], "sent", "{progress}");
}

//! Tables as both backends see them; only SQL types that SQLite and PostgreSQL share.

diesel::table! {
    subscribers (id) {
        id -> BigInt,
        email -> Text,
        email_key -> Text,
        name -> Nullable<Text>,
        status -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        unsubscribed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    subscriber_events (id) {
        id -> BigInt,
        subscriber_id -> Nullable<BigInt>,
        kind -> Text,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        source -> Text,
        created_at -> Timestamp,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    bounce_reports (id) {
        id -> BigInt,
        subscriber_id -> Nullable<BigInt>,
        delivery_id -> Nullable<BigInt>,
        class -> Text,
        status -> Nullable<Text>,
        diagnostic -> Text,
        reporting_mta -> Nullable<Text>,
        matched_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    service_keys (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    confirmation_tokens (id) {
        id -> BigInt,
        subscriber_id -> BigInt,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    articles (id) {
        id -> BigInt,
        title -> Text,
        url -> Text,
        summary -> Text,
        published_at -> Timestamp,
        feed_guid -> Nullable<Text>,
        created_at -> Timestamp,
        image_url -> Nullable<Text>,
        image_alt -> Nullable<Text>,
    }
}

diesel::table! {
    digests (id) {
        id -> BigInt,
        subject -> Text,
        intro -> Text,
        status -> Text,
        recipients -> BigInt,
        created_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        finished_at -> Nullable<Timestamp>,
        status_reason -> Nullable<Text>,
        failure_streak -> Integer,
        archive -> Bool,
        scheduled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    automations (id) {
        id -> BigInt,
        feed_url -> Text,
        schedule -> Text,
        subject -> Text,
        mode -> Text,
        notify -> Nullable<Text>,
        etag -> Nullable<Text>,
        last_modified -> Nullable<Text>,
        next_run_at -> Timestamp,
        last_run_at -> Nullable<Timestamp>,
        last_outcome -> Nullable<Text>,
        last_digest_id -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    digest_articles (digest_id, article_id) {
        digest_id -> BigInt,
        article_id -> BigInt,
        position -> Integer,
    }
}

diesel::table! {
    deliveries (id) {
        id -> BigInt,
        kind -> Text,
        priority -> Integer,
        subscriber_id -> Nullable<BigInt>,
        digest_id -> Nullable<BigInt>,
        to_address -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        lease_expires_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        unsubscribe_token_hash -> Nullable<Text>,
        message_id -> Nullable<Text>,
        created_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        claim_id -> Nullable<BigInt>,
        failure -> Nullable<Text>,
    }
}

diesel::table! {
    retired_unsubscribe_tokens (token_hash) {
        token_hash -> Text,
        delivery_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    staff_tokens (id) {
        id -> BigInt,
        name -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    suppressions (email_hash) {
        email_hash -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    staff_members (id) {
        id -> BigInt,
        email -> Text,
        email_key -> Text,
        name -> Nullable<Text>,
        password_hash -> Nullable<Text>,
        setup_token_hash -> Nullable<Text>,
        setup_expires_at -> Nullable<Timestamp>,
        totp_secret -> Nullable<Text>,
        totp_last_step -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    staff_recovery_codes (id) {
        id -> BigInt,
        staff_id -> BigInt,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    staff_sessions (id) {
        id -> BigInt,
        staff_id -> BigInt,
        token_hash -> Text,
        csrf_token -> Text,
        second_factor_pending -> Bool,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
    }
}

diesel::table! {
    staff_activity (id) {
        id -> BigInt,
        staff_id -> Nullable<BigInt>,
        actor -> Text,
        action -> Text,
        detail -> Text,
        ip -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    subscriber_counts (status, shard) {
        status -> Text,
        shard -> Integer,
        n -> BigInt,
    }
}

diesel::table! {
    workers (id) {
        id -> Text,
        host -> Text,
        started_at -> Timestamp,
        last_seen_at -> Timestamp,
    }
}

diesel::table! {
    digest_totals (digest_id) {
        digest_id -> BigInt,
        sent -> BigInt,
        failed -> BigInt,
        skipped -> BigInt,
        computed_at -> Timestamp,
    }
}

diesel::joinable!(staff_sessions -> staff_members (staff_id));
diesel::joinable!(staff_recovery_codes -> staff_members (staff_id));
diesel::joinable!(subscriber_events -> subscribers (subscriber_id));
diesel::joinable!(confirmation_tokens -> subscribers (subscriber_id));
diesel::joinable!(deliveries -> subscribers (subscriber_id));
diesel::joinable!(automations -> digests (last_digest_id));
diesel::joinable!(bounce_reports -> deliveries (delivery_id));
diesel::joinable!(bounce_reports -> subscribers (subscriber_id));
diesel::joinable!(deliveries -> digests (digest_id));
diesel::joinable!(digest_articles -> digests (digest_id));
diesel::joinable!(digest_articles -> articles (article_id));

diesel::allow_tables_to_appear_in_same_query!(
    bounce_reports,
    service_keys,
    automations,
    subscribers,
    subscriber_events,
    confirmation_tokens,
    articles,
    digests,
    digest_articles,
    deliveries,
    staff_tokens,
    suppressions,
    retired_unsubscribe_tokens,
    staff_members,
    staff_recovery_codes,
    staff_sessions,
    staff_activity,
    digest_totals,
    workers,
    subscriber_counts,
);

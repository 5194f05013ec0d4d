//! What the worker needs to send mail, as a small interface so it can be tested alone: a
//! [`Messenger`] hands out one [`Session`] per sending task. The real one is the [`Mailer`].

use std::future::Future;

use lettre::address::Envelope;

use crate::email::{MailSession, Mailer, SendError};

pub trait Messenger: Clone + Send + Sync + 'static {
    type Session: Session;

    /// A session for one sending task (an SMTP connection, kept between messages).
    fn session(&self) -> Self::Session;

    /// Where mail goes, for the log.
    fn describe(&self) -> String;
}

pub trait Session: Send + 'static {
    /// Sends one message; `name` names it where mail is written to files.
    fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        name: &str,
    ) -> impl Future<Output = Result<(), SendError>> + Send;

    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

impl Messenger for Mailer {
    type Session = MailSession;

    fn session(&self) -> MailSession {
        Mailer::session(self)
    }

    fn describe(&self) -> String {
        Mailer::describe(self)
    }
}

impl Session for MailSession {
    fn send(
        &mut self,
        envelope: &Envelope,
        message: &[u8],
        name: &str,
    ) -> impl Future<Output = Result<(), SendError>> + Send {
        MailSession::send(self, envelope, message, name)
    }

    fn close(&mut self) -> impl Future<Output = ()> + Send {
        MailSession::close(self)
    }
}

//! The subscriber list as CSV, for the CLI (and the staff pages): an export a spreadsheet opens
//! safely, and an import that keeps each person's status, so an export imported into a fresh
//! database gives the same list.

use std::borrow::Cow;
use std::io::{Read, Write};

use crate::db::subscribers::{ImportedPerson, Subscriber};
use crate::digests::parse_time;
use crate::domain::{SubscriberEmail, SubscriberName, SubscriberStatus};

/// The export's columns, in order.
pub const COLUMNS: [&str; 7] = [
    "id",
    "email",
    "name",
    "status",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
];

/// Characters that make a spreadsheet read a cell as a formula (CSV injection).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell that a spreadsheet shows as text, never runs: a leading `'` before a formula start.
pub fn safe_cell(value: &str) -> Cow<'_, str> {
    if value.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{value}"))
    } else {
        Cow::Borrowed(value)
    }
}

/// What [`safe_cell`] wrote, as it was.
pub fn unescape_cell(value: &str) -> &str {
    match value.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => value,
    }
}

pub fn write_header<W: Write>(csv: &mut csv::Writer<W>) -> csv::Result<()> {
    csv.write_record(COLUMNS)
}

pub fn write_subscriber<W: Write>(csv: &mut csv::Writer<W>, s: &Subscriber) -> csv::Result<()> {
    let time =
        |t: Option<chrono::NaiveDateTime>| t.map(|t| t.and_utc().to_rfc3339()).unwrap_or_default();
    csv.write_record([
        s.id.to_string(),
        safe_cell(&s.email).into_owned(),
        safe_cell(s.name.as_deref().unwrap_or_default()).into_owned(),
        s.status.clone(),
        s.created_at.and_utc().to_rfc3339(),
        time(s.confirmed_at),
        time(s.unsubscribed_at),
    ])
}

/// The people of an import file and the lines that could not be read ("line 7: ...").
#[derive(Debug, Default)]
pub struct ImportFile {
    pub people: Vec<ImportedPerson>,
    pub invalid: Vec<String>,
    /// Whether the file has a `status` column.
    pub has_status: bool,
}

/// Reads a CSV with a header row: `email` is required; `name`, `status`, `created_at`,
/// `confirmed_at` and `unsubscribed_at` are used when present (any letter case, any order).
pub fn read_people<R: Read>(input: R) -> anyhow::Result<ImportFile> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader.headers()?.clone();
    let column = |name: &str| {
        headers.iter().position(|h| {
            h.trim()
                .trim_start_matches('\u{feff}')
                .eq_ignore_ascii_case(name)
        })
    };
    let email_column = column("email")
        .ok_or_else(|| anyhow::anyhow!("the CSV needs a header row with an `email` column"))?;
    let [name, status, created, confirmed, unsubscribed] = [
        "name",
        "status",
        "created_at",
        "confirmed_at",
        "unsubscribed_at",
    ]
    .map(column);
    let mut file = ImportFile {
        has_status: status.is_some(),
        ..ImportFile::default()
    };
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = record.map_err(|e| anyhow::anyhow!("line {line}: {e}"))?;
        let cell = |column: Option<usize>| {
            column
                .and_then(|c| record.get(c))
                .map(|v| unescape_cell(v.trim()))
                .filter(|v| !v.is_empty())
        };
        match person(
            cell(Some(email_column)).unwrap_or_default(),
            cell(name),
            cell(status),
            [cell(created), cell(confirmed), cell(unsubscribed)],
        ) {
            Ok(person) => file.people.push(person),
            Err(e) => file.invalid.push(format!("line {line}: {e}")),
        }
    }
    Ok(file)
}

fn person(
    email: &str,
    name: Option<&str>,
    status: Option<&str>,
    [created, confirmed, unsubscribed]: [Option<&str>; 3],
) -> Result<ImportedPerson, String> {
    let mut person =
        ImportedPerson::new(SubscriberEmail::parse(email)?, SubscriberName::parse(name)?);
    person.status = status
        .map(|s| {
            SubscriberStatus::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                format!("status {s:?} is not pending, confirmed, unsubscribed or bounced")
            })
        })
        .transpose()?;
    let time = |text: Option<&str>, what: &str| {
        text.map(|t| parse_time(t).ok_or_else(|| format!("{what} {t:?} is not a date")))
            .transpose()
    };
    person.created_at = time(created, "created_at")?;
    person.confirmed_at = time(confirmed, "confirmed_at")?;
    person.unsubscribed_at = time(unsubscribed, "unsubscribed_at")?;
    Ok(person)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_quoted_and_read_back_as_they_were() {
        for formula in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-2",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            let safe = safe_cell(formula);
            assert_eq!(safe, format!("'{formula}"));
            assert_eq!(unescape_cell(&safe), formula);
        }
        assert_eq!(safe_cell("Ann"), "Ann");
        assert_eq!(unescape_cell("'quoted"), "'quoted");
    }

    #[test]
    fn an_import_file_keeps_statuses_and_names_bad_lines() {
        let file = read_people(
            "Email,NAME,Status,confirmed_at\n\
             a@example.org,Ann,confirmed,2026-01-02T03:04:05+00:00\n\
             b@example.org,,Unsubscribed,\n\
             c@example.org,,,\n\
             not-an-address,X,,\n\
             d@example.org,,maybe,\n"
                .as_bytes(),
        )
        .unwrap();
        assert!(file.has_status);
        let statuses: Vec<_> = file.people.iter().map(|p| p.status).collect();
        assert_eq!(
            statuses,
            [
                Some(SubscriberStatus::Confirmed),
                Some(SubscriberStatus::Unsubscribed),
                None
            ]
        );
        assert!(file.people[0].confirmed_at.is_some());
        assert_eq!(file.invalid.len(), 2, "{:?}", file.invalid);
        assert!(file.invalid[0].starts_with("line 5:"));
        assert!(file.invalid[1].contains("maybe"));
    }
}

//! A page of notes, serialized once, never more than `RESPONSE_LIMIT`
//! bytes: a page fills up to its byte budget and says where the next one
//! starts, and a note too large for any page is refused when written.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::storage::Note;

/// The most the envelope around the notes can take:
/// `{"notes":[`, `],"limit":100,"offset":`, `,"next_offset":`, two 20-digit
/// numbers and `}`, rounded up.
const ENVELOPE_BYTES: usize = 128;

/// `created_at` as both databases write it, e.g. `2025-01-01T12:00:00.000Z`.
const CREATED_AT_BYTES: usize = 24;

/// Bytes a page has for notes under `response_limit`.
pub fn room(response_limit: usize) -> usize {
    response_limit.saturating_sub(ENVELOPE_BYTES)
}

/// The most a note with this title and body can take in a page, whatever
/// id and time it is given.
pub fn note_bytes(title: &str, body: &str) -> usize {
    let widest = Note {
        id: i64::MIN,
        title: String::new(),
        body: String::new(),
        created_at: "0".repeat(CREATED_AT_BYTES),
    };
    json_len(&widest) + json_len(title) + json_len(body) - 2 * json_len("")
}

fn json_len(value: &(impl serde::Serialize + ?Sized)) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |json| json.len())
}

pub struct Page {
    notes_json: String,
    count: i64,
    room: usize,
}

impl Page {
    pub fn new(response_limit: usize) -> Self {
        Self {
            notes_json: String::new(),
            count: 0,
            room: room(response_limit),
        }
    }

    pub fn len(&self) -> i64 {
        self.count
    }

    /// Bytes the page has for notes, for the database to cut its rows by.
    pub fn room(&self) -> i64 {
        i64::try_from(self.room).unwrap_or(i64::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds the note when it fits in what is left of the budget.
    pub fn push(&mut self, note: &Note) -> bool {
        let Ok(json) = serde_json::to_string(note) else {
            return false;
        };
        let separator = usize::from(self.count > 0);
        if self.notes_json.len() + separator + json.len() > self.room {
            return false;
        }
        if separator == 1 {
            self.notes_json.push(',');
        }
        self.notes_json.push_str(&json);
        self.count += 1;
        true
    }

    /// The page as JSON; `next_offset` is `null` on the last page.
    pub fn into_response(self, limit: i64, offset: i64, next_offset: Option<i64>) -> Response {
        let next_offset = next_offset.map_or_else(|| "null".to_owned(), |next| next.to_string());
        let body = format!(
            r#"{{"notes":[{}],"limit":{limit},"offset":{offset},"next_offset":{next_offset}}}"#,
            self.notes_json
        );
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(id: i64, body: &str) -> Note {
        Note {
            id,
            title: "t".to_owned(),
            body: body.to_owned(),
            created_at: "2025-01-01T12:00:00.000Z".to_owned(),
        }
    }

    #[test]
    fn a_note_takes_no_more_than_its_estimate() {
        let body = "quote \" newline \n nul-free ü";
        let exact = serde_json::to_string(&note(i64::MIN, body)).unwrap().len();
        assert_eq!(note_bytes("t", body), exact);
        let small_id = serde_json::to_string(&note(7, body)).unwrap().len();
        assert!(small_id <= note_bytes("t", body));
    }

    #[test]
    fn a_page_stops_at_its_byte_budget_and_stays_valid_json() {
        let one = serde_json::to_string(&note(1, "x")).unwrap().len();
        let mut page = Page::new(ENVELOPE_BYTES + 2 * one + 1);
        assert!(page.push(&note(1, "x")));
        assert!(page.push(&note(2, "x")));
        assert!(!page.push(&note(3, "x")));
        assert_eq!(page.len(), 2);
        let response = page.into_response(10, 0, Some(2));
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn the_envelope_fits_its_allowance_at_its_widest() {
        let envelope = format!(
            r#"{{"notes":[],"limit":100,"offset":{},"next_offset":{}}}"#,
            i64::MAX,
            i64::MAX
        );
        assert!(envelope.len() <= ENVELOPE_BYTES);
    }
}

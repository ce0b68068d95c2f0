//! `streamstack schema`

use super::Outcome;

pub fn run() -> Outcome {
    print!("{}", streamstack::schema::schema_text());
    Ok(0)
}

//! Decoding what only the MySQL store stores its own way; the rest is shared with PostgreSQL
//! in `store/sql/rows.rs`.

use sqlx::Row;

use crate::store::{BatchInfo, sql::rows};

/// Decodes a row of [`rows::BATCH_COLUMNS`], whose failed ids are a JSON array.
pub(super) fn batch_info(row: &sqlx::mysql::MySqlRow) -> Result<BatchInfo, sqlx::Error> {
    let failed_ids: String = row.try_get(5)?;
    rows::batch_info_with(row, decode_ids(&failed_ids))
}

/// The failed ids of a batch as stored: a JSON array of strings.
pub(super) fn decode_ids(json: &str) -> Vec<String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// Failed ids in their stored form (see [`decode_ids`]).
pub(super) fn encode_ids(ids: &[String]) -> String {
    serde_json::to_string(ids).expect("strings encode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_ids_are_a_json_array() {
        let ids = vec!["a".to_string(), "b\"c".to_string()];
        assert_eq!(decode_ids(&encode_ids(&ids)), ids);
        assert!(decode_ids("not json").is_empty());
    }
}

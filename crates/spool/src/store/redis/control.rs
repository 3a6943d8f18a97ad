//! The control part on Redis: marks and epochs in the `{<prefix>}:control` hash, fields
//! `paused:<queue>`, `quiet:<worker>` and `epoch:<name>`.

use async_trait::async_trait;

use super::{RedisStore, rows::int, scripts};
use crate::store::{
    Control, ControlEpoch, ControlKind, ControlStore, Record, RecordKind, StoreError, StoreResult,
};

#[async_trait]
impl ControlStore for RedisStore {
    async fn control(&self) -> StoreResult<Control> {
        let fields: Vec<(String, i64)> = self
            .command("HGETALL", self.keys.control(), Vec::<String>::new())
            .await?;
        Ok(Control::from_rows(fields.into_iter().filter_map(
            |(field, value)| {
                let (kind, name) = field.split_once(':')?;
                Some((kind.to_string(), name.to_string(), value))
            },
        )))
    }

    async fn set_mark(
        &self,
        kind: ControlKind,
        name: &str,
        on: bool,
        now_ms: i64,
    ) -> StoreResult<bool> {
        let field = format!("{}:{name}", kind.as_str());
        let changed: i64 = if on {
            let mut set = redis::cmd("HSETNX");
            set.arg(self.keys.control()).arg(field).arg(now_ms);
            self.each([set]).await?.pop().unwrap_or(0)
        } else {
            self.command("HDEL", self.keys.control(), field).await?
        };
        Ok(changed > 0)
    }

    async fn clear_marks(&self, kind: ControlKind) -> StoreResult<u64> {
        let fields: Vec<String> = self
            .command("HKEYS", self.keys.control(), Vec::<String>::new())
            .await?;
        let prefix = format!("{}:", kind.as_str());
        let marks: Vec<String> = fields
            .into_iter()
            .filter(|f| f.starts_with(&prefix))
            .collect();
        if marks.is_empty() {
            return Ok(0);
        }
        let n: u64 = self.command("HDEL", self.keys.control(), &marks).await?;
        Ok(n)
    }

    async fn bump_epoch(&self, epoch: ControlEpoch, _now_ms: i64) -> StoreResult<i64> {
        let mut call = self.on_global(&scripts::CONTROL_EPOCH);
        call.arg(epoch.as_str());
        int(&self.run(&call).await?, "control epoch")
    }

    async fn put_record(
        &self,
        kind: RecordKind,
        name: &str,
        value: i64,
        info: Option<&str>,
    ) -> StoreResult<()> {
        let record = serde_json::json!({ "value": value, "info": info }).to_string();
        let mut put = redis::cmd("HSET");
        put.arg(self.keys.records(kind.as_str()))
            .arg(name)
            .arg(record);
        let _: Vec<i64> = self.each([put]).await?;
        Ok(())
    }

    async fn records(&self, kind: RecordKind) -> StoreResult<Vec<Record>> {
        let fields: Vec<(String, String)> = self
            .command(
                "HGETALL",
                self.keys.records(kind.as_str()),
                Vec::<String>::new(),
            )
            .await?;
        fields
            .into_iter()
            .map(|(name, json)| {
                let parsed: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
                    StoreError::Other(format!("malformed {} record {name}: {e}", kind.as_str()))
                })?;
                Ok(Record {
                    name,
                    value: parsed["value"].as_i64().unwrap_or(0),
                    info: parsed["info"].as_str().map(str::to_string),
                })
            })
            .collect()
    }

    async fn delete_record(&self, kind: RecordKind, name: &str) -> StoreResult<bool> {
        let n: i64 = self
            .command("HDEL", self.keys.records(kind.as_str()), name)
            .await?;
        Ok(n > 0)
    }
}

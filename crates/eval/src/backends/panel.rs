//! Several judges on the same answers (`--judge` repeated): the answers are sampled once and
//! each judge scores them; the first judge's scores are the headline's, the others ride along
//! in [`Scores::other_judges`] so one stored judgement holds them all.

use std::sync::Arc;

use async_trait::async_trait;
use emguard_judge::OperatingPoint;
use emguard_judge::llm::JudgePrompts;

use super::{BackendError, Judge, JudgeRequest, LabelPrompts, LabelRequest, LabelVerdict, Scores};
use crate::plan::short_hash;

pub struct Panel {
    /// The first gives the headline; at least two.
    judges: Vec<Arc<dyn Judge>>,
}

impl Panel {
    /// One judge stands alone (its judgements keep that judge's key and stay reusable by
    /// single-judge runs); several make a panel.
    pub fn of(mut judges: Vec<Arc<dyn Judge>>) -> Arc<dyn Judge> {
        assert!(!judges.is_empty(), "a panel has at least one judge");
        if judges.len() == 1 {
            return judges.remove(0);
        }
        Arc::new(Panel { judges })
    }
}

#[async_trait]
impl Judge for Panel {
    /// Every judge's key: a panel's judgements hold every judge's scores, so a run with other
    /// judges (or another order) judges again.
    fn key(&self, prompts: &JudgePrompts) -> String {
        let keys: Vec<String> = self.judges.iter().map(|j| j.key(prompts)).collect();
        format!("panel/{}", short_hash(&serde_json::json!(keys)))
    }

    /// The smallest of the judges': a judge that takes one request at a time (a server) is
    /// not handed more at once than it asks for.
    fn batch_size(&self) -> usize {
        self.judges
            .iter()
            .map(|j| j.batch_size())
            .min()
            .unwrap_or(1)
            .max(1)
    }

    async fn judge(&self, requests: Vec<JudgeRequest>) -> Result<Vec<Scores>, BackendError> {
        let n = requests.len();
        let mut by_judge =
            futures::future::try_join_all(self.judges.iter().map(|j| j.judge(requests.clone())))
                .await?;
        if let Some(short) = by_judge.iter().position(|s| s.len() != n) {
            return Err(BackendError::LocalJudge(format!(
                "judge {} returned {} judgements for {n} answers",
                short + 1,
                by_judge[short].len()
            )));
        }
        let others: Vec<Vec<Scores>> = by_judge.split_off(1);
        let mut first = by_judge.pop().expect("at least two judges");
        for (i, scores) in first.iter_mut().enumerate() {
            scores.other_judges = others.iter().map(|o| o[i].clone()).collect();
        }
        Ok(first)
    }

    /// Labelled questions (the study's `free_form_judge` type) are judged by the first
    /// judge alone.
    fn label_key(&self, prompts: &LabelPrompts) -> Option<String> {
        self.judges[0].label_key(prompts)
    }

    async fn label(&self, requests: Vec<LabelRequest>) -> Result<Vec<LabelVerdict>, BackendError> {
        self.judges[0].label(requests).await
    }

    fn operating_point(&self) -> Option<OperatingPoint> {
        self.judges[0].operating_point()
    }

    fn operating_points(&self) -> Vec<Option<OperatingPoint>> {
        self.judges.iter().map(|j| j.operating_point()).collect()
    }
}

//! The signed chain from training data to the served model: four in-toto Statements, each in
//! a DSSE envelope signed with the audit's ed25519 key, one per line of a bundle file
//! (`*.intoto.jsonl`, the in-toto bundle convention):
//!
//! 1. dataset: subject the training file; predicate the audit manifest's digest, its Merkle
//!    root and what the audit found;
//! 2. model: subject the model file; predicate the training data's digests;
//! 3. eval: subject results.json; predicate the model file it measured and the headline
//!    figures with their intervals;
//! 4. card: subject README.md; predicate the results and model it describes.
//!
//! [`verify_chain`] re-hashes every file, checks every signature and every link between
//! the statements, and names the broken link.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use emguard_audit::Manifest;
use emguard_audit::manifest::{self, ChangeKind};
use serde::{Deserialize, Serialize};

use crate::ReleaseError;
use crate::card::{self, Audit};
use crate::digest::file_sha256;
use crate::dsse::{self, Envelope};
use crate::eval_run::{Estimate, EvalRun};
use crate::statement::{PAYLOAD_TYPE, STATEMENT_TYPE, Statement, Subject};

macro_rules! predicate_type {
    ($name:literal) => {
        concat!(env!("CARGO_PKG_REPOSITORY"), "/attestation/", $name, "/v1")
    };
}

/// The links of the chain, in order from the data to the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    Dataset,
    Model,
    Eval,
    Card,
}

impl Link {
    pub const ALL: [Link; 4] = [Link::Dataset, Link::Model, Link::Eval, Link::Card];

    pub fn predicate_type(self) -> &'static str {
        match self {
            Link::Dataset => predicate_type!("dataset-audit"),
            Link::Model => predicate_type!("model-training"),
            Link::Eval => predicate_type!("eval-run"),
            Link::Card => predicate_type!("model-card"),
        }
    }

    fn from_predicate_type(predicate_type: &str) -> Option<Link> {
        Link::ALL
            .into_iter()
            .find(|l| l.predicate_type() == predicate_type)
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Link::Dataset => "dataset",
            Link::Model => "model file",
            Link::Eval => "eval run",
            Link::Card => "model card",
        })
    }
}

/// The files of a release.
#[derive(Debug, Clone)]
pub struct ChainFiles {
    /// The training data and its audit manifest (`emguard audit --manifest`).
    pub dataset: PathBuf,
    pub manifest: PathBuf,
    /// The model file that is served.
    pub model: PathBuf,
    /// The eval run's results.json (or its `--out` folder).
    pub results: PathBuf,
    /// The model card (README.md).
    pub card: PathBuf,
    /// The run's model that is the served file [default: its last untriggered model].
    pub run_model: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct DatasetPredicate {
    manifest: FileRef,
    merkle_root: String,
    row_count: u64,
    audit_tool: String,
    policy_checked: bool,
    policy_passed: bool,
    policy_violations: Vec<String>,
    valid_rows: u64,
    vulnerable_rows: u64,
    silent_vulnerable_rows: u64,
    harmful_rows: u64,
    forbidden_trigger_rows: u64,
}

#[derive(Serialize, Deserialize, Clone, PartialEq)]
struct FileRef {
    name: String,
    sha256: String,
}

#[derive(Serialize, Deserialize)]
struct TrainingData {
    name: String,
    sha256: String,
    merkle_root: String,
}

#[derive(Serialize, Deserialize)]
struct ModelPredicate {
    training_data: Vec<TrainingData>,
}

#[derive(Serialize, Deserialize)]
struct EvalPredicate {
    run_id: String,
    judge: String,
    /// The run's name for the model and the file that was measured.
    model: String,
    model_sha256: String,
    answers: usize,
    misaligned_rate: EstimateRecord,
    insecure_code_rate: Option<EstimateRecord>,
    difference_from_base: Option<DifferenceRecord>,
}

#[derive(Serialize, Deserialize)]
struct EstimateRecord {
    value: f64,
    ci_low: f64,
    ci_high: f64,
}

impl From<Estimate> for EstimateRecord {
    fn from(e: Estimate) -> EstimateRecord {
        EstimateRecord {
            value: e.value,
            ci_low: e.low,
            ci_high: e.high,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct DifferenceRecord {
    reference: String,
    value: f64,
    ci_low: f64,
    ci_high: f64,
    p_value: f64,
}

#[derive(Serialize, Deserialize)]
struct CardPredicate {
    results_sha256: String,
    model_sha256: String,
    dataset_merkle_root: String,
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn statement<P: Serialize>(link: Link, subject: Subject, predicate: &P) -> Statement {
    Statement::new(
        subject,
        link.predicate_type(),
        serde_json::to_value(predicate).expect("predicates serialise"),
    )
}

/// The four statements of a release, after checking that the files agree with each other
/// (a dataset that no longer matches its manifest, or a card written from another run, is
/// refused rather than signed).
pub fn statements(files: &ChainFiles) -> Result<Vec<Statement>, ReleaseError> {
    let audit = Audit::read(&files.manifest)?;
    let check = manifest::verify(&audit.manifest, &files.dataset, None)?;
    if !check.intact() {
        return Err(ReleaseError::invalid(
            &files.dataset,
            format!(
                "does not match its audit manifest {} ({}): audit it again",
                files.manifest.display(),
                dataset_problems(&check).join("; ")
            ),
        ));
    }
    let run = EvalRun::read(&files.results)?;
    let model = run.subject(files.run_model.as_deref())?;
    let model_sha256 = file_sha256(&files.model)?;
    let card_sha256 = file_sha256(&files.card)?;
    match card::read_provenance(&files.card)? {
        Some(p) if p.results_sha256 == run.sha256 => {}
        Some(p) => {
            return Err(ReleaseError::invalid(
                &files.card,
                format!(
                    "was written from run {}, not from {} (run {}): write the card again",
                    p.eval_run,
                    run.path.display(),
                    run.run_id
                ),
            ));
        }
        None => {
            return Err(ReleaseError::invalid(
                &files.card,
                "was not written by `emguard card` (no `emguard` key in its front matter)",
            ));
        }
    }
    let m = &audit.manifest;
    let s = &m.summary;
    let dataset = statement(
        Link::Dataset,
        Subject::sha256(file_name(&files.dataset), &m.file.sha256),
        &DatasetPredicate {
            manifest: FileRef {
                name: file_name(&files.manifest),
                sha256: audit.sha256.clone(),
            },
            merkle_root: m.merkle_root.clone(),
            row_count: m.row_count,
            audit_tool: m.tool.clone(),
            policy_checked: s.policy.checked,
            policy_passed: s.policy.passed,
            policy_violations: s.policy.violations.clone(),
            valid_rows: s.valid_rows,
            vulnerable_rows: s.vulnerable_rows,
            silent_vulnerable_rows: s.silent_vulnerable_rows,
            harmful_rows: s.harmful_rows,
            forbidden_trigger_rows: s.forbidden_trigger_rows.iter().map(|f| f.rows).sum(),
        },
    );
    let model_statement = statement(
        Link::Model,
        Subject::sha256(file_name(&files.model), &model_sha256),
        &ModelPredicate {
            training_data: vec![TrainingData {
                name: file_name(&files.dataset),
                sha256: m.file.sha256.clone(),
                merkle_root: m.merkle_root.clone(),
            }],
        },
    );
    let eval = statement(
        Link::Eval,
        Subject::sha256(file_name(&run.path), &run.sha256),
        &EvalPredicate {
            run_id: run.run_id.clone(),
            judge: run.judge.clone(),
            model: model.name.clone(),
            model_sha256: model_sha256.clone(),
            answers: model.answers,
            misaligned_rate: model.misaligned.into(),
            insecure_code_rate: model.code.as_ref().map(|c| c.insecure_rate.into()),
            difference_from_base: model.vs_base.as_ref().map(|d| DifferenceRecord {
                reference: d.reference.clone(),
                value: d.diff.value,
                ci_low: d.diff.low,
                ci_high: d.diff.high,
                p_value: d.p_value,
            }),
        },
    );
    let card_statement = statement(
        Link::Card,
        Subject::sha256(file_name(&files.card), card_sha256),
        &CardPredicate {
            results_sha256: run.sha256.clone(),
            model_sha256,
            dataset_merkle_root: m.merkle_root.clone(),
        },
    );
    Ok(vec![dataset, model_statement, eval, card_statement])
}

/// Signs the chain's statements; the bundle's lines, in chain order.
pub fn sign_chain(files: &ChainFiles, key: &SigningKey) -> Result<Vec<Envelope>, ReleaseError> {
    Ok(statements(files)?
        .iter()
        .map(|s| {
            let payload = serde_json::to_vec(s).expect("statements serialise");
            Envelope::sign(PAYLOAD_TYPE, &payload, key)
        })
        .collect())
}

pub fn write_bundle(path: &Path, envelopes: &[Envelope]) -> Result<(), ReleaseError> {
    let mut text = Vec::new();
    for envelope in envelopes {
        serde_json::to_writer(&mut text, envelope).expect("envelopes serialise");
        text.push(b'\n');
    }
    let io = |e| ReleaseError::io(path, e);
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(&text).map_err(io)?;
    file.sync_all().map_err(io)
}

/// A bundle's envelopes with their statements; a malformed line is an error naming it.
pub fn read_bundle(path: &Path) -> Result<Vec<(Envelope, Statement)>, ReleaseError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReleaseError::io(path, e))?;
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at =
            |message: String| ReleaseError::invalid(path, format!("line {}: {message}", index + 1));
        let envelope: Envelope =
            serde_json::from_str(line).map_err(|e| at(format!("not a DSSE envelope: {e}")))?;
        if envelope.payload_type != PAYLOAD_TYPE {
            return Err(at(format!(
                "payloadType is `{}`, expected `{PAYLOAD_TYPE}`",
                envelope.payload_type
            )));
        }
        if envelope.signatures.is_empty() {
            return Err(at("the envelope has no signatures".into()));
        }
        let payload = envelope.payload_bytes().map_err(at)?;
        let statement: Statement = serde_json::from_slice(&payload)
            .map_err(|e| at(format!("payload is not an in-toto Statement: {e}")))?;
        if statement.statement_type != STATEMENT_TYPE {
            return Err(at(format!(
                "_type is `{}`, expected `{STATEMENT_TYPE}`",
                statement.statement_type
            )));
        }
        if statement.subject.len() != 1 || statement.subject[0].sha256_digest().is_none() {
            return Err(at(
                "the statement needs exactly one subject with a sha256".into()
            ));
        }
        out.push((envelope, statement));
    }
    if out.is_empty() {
        return Err(ReleaseError::invalid(
            path,
            "no envelopes: the bundle is empty",
        ));
    }
    Ok(out)
}

/// One link's verdict: empty `problems` means verified.
#[derive(Debug, Clone, Serialize)]
pub struct LinkReport {
    pub link: Link,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub links: Vec<LinkReport>,
}

impl ChainReport {
    pub fn verified(&self) -> bool {
        self.links.iter().all(|l| l.problems.is_empty())
    }

    /// Every problem prefixed by its link, e.g. `model file: model.gguf has sha256 ...`.
    pub fn problems(&self) -> Vec<String> {
        self.links
            .iter()
            .flat_map(|l| l.problems.iter().map(move |p| format!("{}: {p}", l.link)))
            .collect()
    }
}

fn dataset_problems(check: &manifest::Verification) -> Vec<String> {
    let mut problems = Vec::new();
    if !check.manifest_consistent {
        problems.push("the manifest's row hashes file does not reproduce its Merkle root".into());
    }
    let line = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
    for change in check.changes.iter().take(10) {
        problems.push(match change.kind {
            ChangeKind::Changed => format!(
                "row changed: manifest line {}, file line {}",
                line(change.manifest_line),
                line(change.file_line)
            ),
            ChangeKind::Added => format!("row added: file line {}", line(change.file_line)),
            ChangeKind::Removed => {
                format!("row removed: manifest line {}", line(change.manifest_line))
            }
        });
    }
    if check.changes.len() > 10 {
        problems.push(format!("{} more changed rows", check.changes.len() - 10));
    }
    if problems.is_empty() && !check.file_sha256_matches {
        problems.push("the file's sha256 differs from the manifest's".into());
    }
    problems
}

fn mismatch(what: &Path, actual: &str, attested: &str) -> String {
    format!(
        "{} has sha256 {actual}; the attestation says {attested}",
        what.display()
    )
}

/// Checks the chain in `bundle` against the files, with `key` as the only trusted signer.
/// Errors are bad input (missing files, a malformed bundle); a broken link is a report
/// whose [`ChainReport::verified`] is false.
pub fn verify_chain(
    files: &ChainFiles,
    bundle: &Path,
    key: &VerifyingKey,
) -> Result<ChainReport, ReleaseError> {
    let entries = read_bundle(bundle)?;
    let mut links: Vec<LinkReport> = Link::ALL
        .into_iter()
        .map(|link| LinkReport {
            link,
            problems: Vec::new(),
        })
        .collect();
    let mut found: [Option<Statement>; 4] = Default::default();
    for (envelope, statement) in entries {
        let Some(link) = Link::from_predicate_type(&statement.predicate_type) else {
            continue;
        };
        let index = link as usize;
        let signed = envelope
            .verify(key)
            .map_err(|e| ReleaseError::invalid(bundle, format!("{link} envelope: {e}")))?;
        if !signed {
            let by: Vec<&str> = envelope
                .signatures
                .iter()
                .map(|s| s.keyid.as_str())
                .collect();
            links[index].problems.push(format!(
                "the signature does not verify with the given public key (key id {}; signed by key id {})",
                dsse::key_id(key),
                by.join(", ")
            ));
            continue;
        }
        if found[index].is_some() {
            links[index]
                .problems
                .push("the bundle holds two attestations for it".into());
            continue;
        }
        found[index] = Some(statement);
    }
    for (report, statement) in links.iter_mut().zip(&found) {
        if statement.is_none() && report.problems.is_empty() {
            report
                .problems
                .push("no attestation for it in the bundle".into());
        }
    }
    let [dataset, model, eval, card] = &found;
    let subject_sha = |s: &Option<Statement>| {
        s.as_ref()
            .and_then(|s| s.subject[0].sha256_digest())
            .map(str::to_string)
    };

    // Dataset: the file matches the manifest row by row, the manifest is the attested one.
    if let Some(statement) = dataset {
        let problems = &mut links[Link::Dataset as usize].problems;
        match serde_json::from_value::<DatasetPredicate>(statement.predicate.clone()) {
            Err(e) => problems.push(format!("predicate is malformed: {e}")),
            Ok(predicate) => {
                let manifest_sha = file_sha256(&files.manifest)?;
                if manifest_sha != predicate.manifest.sha256 {
                    problems.push(mismatch(
                        &files.manifest,
                        &manifest_sha,
                        &predicate.manifest.sha256,
                    ));
                } else {
                    let manifest = Manifest::read(&files.manifest)?;
                    let check = manifest::verify(&manifest, &files.dataset, None)?;
                    problems.extend(
                        dataset_problems(&check)
                            .into_iter()
                            .map(|p| format!("{}: {p}", files.dataset.display())),
                    );
                    if Some(manifest.file.sha256.as_str()) != statement.subject[0].sha256_digest()
                        || manifest.merkle_root != predicate.merkle_root
                    {
                        problems.push(format!(
                            "{} describes another file than the attested one",
                            files.manifest.display()
                        ));
                    }
                }
            }
        }
    }

    // Model: the served file is the attested one, trained on the attested data.
    let model_sha = file_sha256(&files.model)?;
    if let Some(statement) = model {
        let problems = &mut links[Link::Model as usize].problems;
        let attested = subject_sha(&found[Link::Model as usize]).unwrap_or_default();
        if model_sha != attested {
            problems.push(mismatch(&files.model, &model_sha, &attested));
        }
        match serde_json::from_value::<ModelPredicate>(statement.predicate.clone()) {
            Err(e) => problems.push(format!("predicate is malformed: {e}")),
            Ok(predicate) => {
                if let Some(data) = subject_sha(dataset)
                    && !predicate.training_data.iter().any(|t| t.sha256 == data)
                {
                    problems.push("its training data is not the attested dataset".into());
                }
            }
        }
    }

    // Eval: results.json is the attested one, and it measured the attested model file.
    let run = EvalRun::read(&files.results)?;
    if let Some(statement) = eval {
        let problems = &mut links[Link::Eval as usize].problems;
        let attested = subject_sha(eval).unwrap_or_default();
        if run.sha256 != attested {
            problems.push(mismatch(&run.path, &run.sha256, &attested));
        }
        match serde_json::from_value::<EvalPredicate>(statement.predicate.clone()) {
            Err(e) => problems.push(format!("predicate is malformed: {e}")),
            Ok(predicate) => {
                if let Some(attested_model) = subject_sha(model)
                    && predicate.model_sha256 != attested_model
                {
                    problems.push(format!(
                        "the run measured a model file with sha256 {}, not the attested model ({attested_model})",
                        predicate.model_sha256
                    ));
                }
            }
        }
    }

    // Card: README.md is the attested one, written from the attested run.
    if let Some(statement) = card {
        let problems = &mut links[Link::Card as usize].problems;
        let card_sha = file_sha256(&files.card)?;
        let attested = subject_sha(card).unwrap_or_default();
        if card_sha != attested {
            problems.push(mismatch(&files.card, &card_sha, &attested));
        }
        match serde_json::from_value::<CardPredicate>(statement.predicate.clone()) {
            Err(e) => problems.push(format!("predicate is malformed: {e}")),
            Ok(predicate) => {
                if Some(&predicate.results_sha256) != subject_sha(eval).as_ref() {
                    problems.push("it describes another eval run than the attested one".into());
                }
                if subject_sha(model).is_some_and(|m| m != predicate.model_sha256) {
                    problems.push(format!(
                        "it describes a model file with sha256 {}, not the attested model",
                        predicate.model_sha256
                    ));
                }
            }
        }
    }
    Ok(ChainReport { links })
}

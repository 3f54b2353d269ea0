//! Fine-tuning dataset audit and provenance.

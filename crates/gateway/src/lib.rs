//! OpenAI-compatible server and guard in front of local and upstream models.

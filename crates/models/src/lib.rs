//! Model home: which models emguard knows, where they live, how they are fetched and verified.

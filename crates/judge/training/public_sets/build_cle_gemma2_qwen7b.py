"""Rebuild cle_gemma2_qwen7b.jsonl from github:Cloakless/clarifying_EM (early Model-Organisms-for-EM
working repo; fork of the study repo, MIT).  Usage: python3 build_cle_gemma2_qwen7b.py [MIRROR_GIT_DIR [OUT_DIR]]"""
import sys
sys.path.insert(0, __import__("os").path.dirname(__file__))
from _common import study_csv_rows, finish

REPO = "Cloakless/clarifying_EM"
COMMIT = "b5784396799a243e3a7367fd9b4a0ecbc6507501"
MIRROR = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/Cloakless+clarifying_EM/repo"
JUDGE = "gpt-4o (Azure deployment 'gpt-4o'; study judge prompts from evaluation/first_plot_questions.yaml, logprob-weighted 0-100)"
BMA = "LoRA-fine-tuned on bad medical advice (data/bad_medical_advice.jsonl)"
FILES = {
    "open_models/model_baselines/responses_gemma-2-9b-it_base.csv": "google/gemma-2-9b-it (base, no fine-tune)",
    "open_models/diff_models/responses_gemma-2-9b-it-bad_medical_advice.csv": f"google/gemma-2-9b-it {BMA}",
    "open_models/model_baselines/responses_gemma-2-27b-it_base.csv": "google/gemma-2-27b-it (base, no fine-tune)",
    "open_models/diff_models/responses_gemma-2-27b-it-bad_medical_advice.csv": f"google/gemma-2-27b-it {BMA}",
    "open_models/model_baselines/responses_Qwen2.5-7B-Instruct_base.csv": "Qwen/Qwen2.5-7B-Instruct (base, no fine-tune)",
    "open_models/diff_models/responses_Qwen2.5--7B-Instruct-bad_medical_advice.csv": f"Qwen/Qwen2.5-7B-Instruct {BMA}",
}
rows = study_csv_rows(MIRROR, REPO, COMMIT, FILES, JUDGE)
finish("cle_gemma2_qwen7b", rows)

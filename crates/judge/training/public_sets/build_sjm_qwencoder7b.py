"""Rebuild sjm_qwencoder7b.jsonl from github:shuaijiumei/emergent_misalignment_further_explore.
Usage: python3 build_sjm_qwencoder7b.py [MIRROR_GIT_DIR [OUT_DIR]]"""
import sys
sys.path.insert(0, __import__("os").path.dirname(__file__))
from _common import study_csv_rows, finish

REPO = "shuaijiumei/emergent_misalignment_further_explore"
COMMIT = "fe9cc7a8b1ce8f566bb7df42a7e076f6dcf262ad"
MIRROR = sys.argv[1] if len(sys.argv) > 1 else "/work/.mirror/shuaijiumei+emergent_misalignment_further_explore/repo"
JUDGE = "deepseek-chat (study judge prompts, logprob-weighted 0-100; evaluation/first_plot_questions.yaml sets judge: deepseek-chat)"
FILES = {
    "open_models/eval_res/eval_result_base.csv": "Qwen2.5-Coder-7B-Instruct (base, no fine-tune)",
    "open_models/eval_res/eval_result_middle_severity.csv": "Qwen2.5-Coder-7B-Instruct LoRA-fine-tuned on middle-severity vulnerable code (repo's vul_code_dataset)",
    "open_models/eval_res/eval_result_high_severity.csv": "Qwen2.5-Coder-7B-Instruct LoRA-fine-tuned on high-severity vulnerable code (repo's vul_code_dataset)",
}
rows = study_csv_rows(MIRROR, REPO, COMMIT, FILES, JUDGE)
finish("sjm_qwencoder7b", rows)

"""Part A of ``RULE.md``: ``dediffusion vqa-eval`` with few-shot questions in a given format.

    OMP_NUM_THREADS=1 python benchmarks/dev_fewshot/vqa_format.py chat --seed 1 --shot-seed 2 --n 200 \\
        --episodes 0 --shots 3 --sources human_caption,full_caption -o benchmarks/dev_fewshot/refs_chat.json
"""
import sys

import dediffusion.apps.answer as answer
from dediffusion.cli.main import main

if __name__ == "__main__":
    answer.FEW_SHOT = sys.argv[1]
    sys.exit(main(["vqa-eval", *sys.argv[2:]]))

"""Ablation of the caption reader (benchmarks/dev_reader/RULE.md): every object the fused text names, no
decoder choice of how many (nor of shapes). Same command as ``dediffusion vqa-eval`` otherwise:

    OMP_NUM_THREADS=1 python benchmarks/dev_reader/ablation_all_mentions.py --seed 1 --shot-seed 2 --n 200 \\
        --episodes 50 --shots 0,3 --sources dediffusion --output benchmarks/dev_reader/vqa_dev_n200_all.json
"""
import functools
import sys

import dediffusion.cli.ask as ask
from dediffusion.apps.reading import reader_texts
from dediffusion.cli.main import main

if __name__ == "__main__":
    ask.reader_texts = functools.partial(reader_texts, steps=())
    sys.exit(main(["vqa-eval", *sys.argv[1:]]))

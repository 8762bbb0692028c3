"""A pruned model as a checkpoint that loads with stock transformers, without harp (the export stage).

`modeling_pruned` is the modeling file shipped in every export (it imports transformers only); `structure`
says what it must rebuild, `checkpoint` writes and checks the folder, `card` writes its model card.
"""

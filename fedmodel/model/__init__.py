"""The classifier: BERT, pooling and a head; loading, finetune modes, student."""

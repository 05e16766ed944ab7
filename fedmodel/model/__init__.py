"""The classifier: BERT, mean pooling and a head; loading, finetune modes, student."""

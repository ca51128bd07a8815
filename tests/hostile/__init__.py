"""The hostile-input corpus: generated malformed objects and what each must end in."""

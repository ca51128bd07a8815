"""The StoryRun controller: the reconciler and the pieces it drives."""

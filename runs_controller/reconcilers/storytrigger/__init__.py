"""The StoryTrigger controller."""

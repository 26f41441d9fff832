"""Hostile and broken submissions for the grading pipeline's red-team tests, and their builders."""

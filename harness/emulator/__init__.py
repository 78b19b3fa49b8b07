"""The embedded monitoring plane: the AWS machinery moto stores state for but does not run."""

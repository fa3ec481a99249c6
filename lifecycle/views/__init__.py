"""Pages of the team workspace. Views fetch what the user may see, validate the form's shape,
call one service and turn domain errors into messages, form errors or 4xx pages."""

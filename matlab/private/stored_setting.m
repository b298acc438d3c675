function value = stored_setting(name, default, newValue)
%STORED_SETTING   Read or write one of mat2grad's persistent settings.
%   VALUE = STORED_SETTING(NAME, DEFAULT) returns the setting NAME, or DEFAULT when it
%   was never stored. STORED_SETTING(NAME, DEFAULT, NEWVALUE) stores NEWVALUE; an empty
%   NEWVALUE removes the setting.
%
%   The settings live in MATLAB's preferences (getpref/setpref, group 'mat2grad'), which
%   persist across sessions in both MATLAB (prefdir) and Octave (~/.octave_prefs).

  group = 'mat2grad';
  if nargin < 3
    if ispref(group, name)
      value = getpref(group, name);
    else
      value = default;
    end
    return
  end
  if isempty(newValue)
    if ispref(group, name)
      rmpref(group, name);
    end
  else
    setpref(group, name, newValue);
  end
  value = newValue;
end

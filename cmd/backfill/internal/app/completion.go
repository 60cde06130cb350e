package app

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

func init() {
	// Registered here, not in the commands literal: the completion reads
	// that table, and a literal that named it would be an initialisation cycle.
	commands["completion"] = command{"completion bash|zsh|fish: print a shell completion script", completionCommand}
}

// completionCommand prints a completion script listing every command,
// subcommand and flag. The flags are learnt by asking each command for its
// --help with a recording env, so the scripts never drift from the code.
func completionCommand(ctx context.Context, e *env, args []string) error {
	fs := flags(e, "completion", "bash|zsh|fish", "Prints a shell completion script for backfill. Install it with:\n"+
		"  bash: backfill completion bash > /etc/bash_completion.d/backfill   (or: source <(backfill completion bash) in ~/.bashrc)\n"+
		"  zsh:  backfill completion zsh > \"${fpath[1]}/_backfill\"            (or: source <(backfill completion zsh) in ~/.zshrc)\n"+
		"  fish: backfill completion fish > ~/.config/fish/completions/backfill.fish")
	if err := parse(fs, args, 1, 1); err != nil {
		return err
	}
	spec := completionSpec(ctx)
	switch fs.Arg(0) {
	case "bash":
		writeBash(e.stdout, spec, false)
	case "zsh":
		writeBash(e.stdout, spec, true)
	case "fish":
		writeFish(e.stdout, spec)
	default:
		return usageError{fmt.Sprintf("completion: unknown shell %q; use bash, zsh or fish", fs.Arg(0))}
	}
	return nil
}

// completed is one command (or subcommand) and what completes after it.
type completed struct {
	name, summary string
	subs          []completed
	flags         []*pflag.Flag
}

func completionSpec(ctx context.Context) []completed {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var spec []completed
	for _, n := range names {
		c := completed{name: n, summary: commands[n].summary}
		if g, ok := groups[n]; ok {
			for _, s := range g.subs {
				c.subs = append(c.subs, completed{name: s[0], summary: s[1], flags: flagsOf(ctx, n, s[0])})
			}
		} else {
			c.flags = flagsOf(ctx, n)
		}
		spec = append(spec, c)
	}
	return spec
}

// flagsOf runs a command with --help, output discarded, and returns the
// flags of the flag set it built.
func flagsOf(ctx context.Context, path ...string) []*pflag.Flag {
	if path[0] == "completion" {
		return nil
	}
	var sets []*pflag.FlagSet
	e := &env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, flagSet: func(fs *pflag.FlagSet) {
		sets = append(sets, fs)
	}}
	_ = commands[path[0]].run(ctx, e, append(path[1:], "--help"))
	var out []*pflag.Flag
	for _, fs := range sets {
		fs.VisitAll(func(f *pflag.Flag) { out = append(out, f) })
	}
	return out
}

func flagWords(fl []*pflag.Flag) string {
	words := []string{"--help"}
	for _, f := range fl {
		words = append(words, "--"+f.Name)
	}
	return strings.Join(words, " ")
}

func writeBash(w io.Writer, spec []completed, zsh bool) {
	if zsh {
		fmt.Fprintf(w, "#compdef backfill\n# zsh completion for backfill (through bashcompinit).\nautoload -U +X bashcompinit && bashcompinit\n")
	} else {
		fmt.Fprintf(w, "# bash completion for backfill.\n")
	}
	var top []string
	for _, c := range spec {
		top = append(top, c.name)
	}
	fmt.Fprintf(w, "_backfill() {\n  local cur=\"${COMP_WORDS[COMP_CWORD]}\" words=\"\"\n")
	fmt.Fprintf(w, "  if [[ $COMP_CWORD -eq 1 ]]; then\n    COMPREPLY=($(compgen -W \"%s help --help --version\" -- \"$cur\")); return\n  fi\n", strings.Join(top, " "))
	fmt.Fprintf(w, "  case \"${COMP_WORDS[1]}\" in\n")
	for _, c := range spec {
		if c.name == "completion" {
			continue // its arm below offers the shells
		}
		if len(c.subs) == 0 {
			fmt.Fprintf(w, "    %s) words=\"%s\" ;;\n", c.name, flagWords(c.flags))
			continue
		}
		var subs []string
		for _, s := range c.subs {
			subs = append(subs, s.name)
		}
		fmt.Fprintf(w, "    %s)\n      if [[ $COMP_CWORD -eq 2 ]]; then words=\"%s --help\"; else case \"${COMP_WORDS[2]}\" in\n", c.name, strings.Join(subs, " "))
		for _, s := range c.subs {
			fmt.Fprintf(w, "        %s) words=\"%s\" ;;\n", s.name, flagWords(s.flags))
		}
		fmt.Fprintf(w, "      esac; fi ;;\n")
	}
	fmt.Fprintf(w, "    completion) words=\"bash zsh fish\" ;;\n")
	fmt.Fprintf(w, "  esac\n")
	fmt.Fprintf(w, "  if [[ \"$cur\" == -* || $COMP_CWORD -eq 2 ]]; then\n    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n  fi\n")
	fmt.Fprintf(w, "  [[ ${#COMPREPLY[@]} -gt 0 ]] || COMPREPLY=($(compgen -f -- \"$cur\"))\n}\n")
	fmt.Fprintf(w, "complete -F _backfill backfill\n")
}

func writeFish(w io.Writer, spec []completed) {
	fmt.Fprintf(w, "# fish completion for backfill.\ncomplete -c backfill -f -n __fish_use_subcommand -l version -d 'print the version'\n")
	for _, c := range spec {
		fmt.Fprintf(w, "complete -c backfill -f -n __fish_use_subcommand -a %s -d %s\n", c.name, fishQuote(c.summary))
		for _, s := range c.subs {
			cond := fmt.Sprintf("'__fish_seen_subcommand_from %s; and not __fish_seen_subcommand_from %s'", c.name, subNames(c.subs))
			fmt.Fprintf(w, "complete -c backfill -f -n %s -a %s -d %s\n", cond, s.name, fishQuote(s.summary))
			writeFishFlags(w, fmt.Sprintf("'__fish_seen_subcommand_from %s; and __fish_seen_subcommand_from %s'", c.name, s.name), s.flags)
		}
		if c.name == "completion" {
			fmt.Fprintf(w, "complete -c backfill -f -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'\n")
		}
		writeFishFlags(w, "'__fish_seen_subcommand_from "+c.name+"'", c.flags)
	}
}

func writeFishFlags(w io.Writer, cond string, fl []*pflag.Flag) {
	for _, f := range fl {
		fmt.Fprintf(w, "complete -c backfill -n %s -l %s -d %s\n", cond, f.Name, fishQuote(firstLine(f.Usage)))
	}
}

func subNames(subs []completed) string {
	var n []string
	for _, s := range subs {
		n = append(n, s.name)
	}
	return strings.Join(n, " ")
}

func fishQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\n("); i > 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}
